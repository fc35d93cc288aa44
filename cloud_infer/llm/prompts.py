"""Prompt layout that keeps shared prefixes stable, and the fence that keeps untrusted text data.

vLLM (``--enable-prefix-caching``) and llama.cpp reuse the evaluated tokens of the longest prompt prefix
they have seen. So every feature lays its prompts out from the most shared to the least: a constant
system prompt (never a time, a user or a request id), then the context several requests share (the
same window, the same excerpts), then the request itself.

Text read from a screen (window titles, app ids, URLs, OCR and accessibility text, clipboard, selections)
is untrusted: it enters a prompt only through ``fence``, and a user's typed request through
``neutralize``. Neither lets it close a fence, open another, or write a chat template's control tokens
(``<|im_start|>``, ``</s>``, ``[INST]``...), which llama.cpp turns into real control tokens wherever they
appear in a prompt, message content included.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping

from cloud_infer.llm.backend import ChatMessage

# Every fence name a prompt uses. Text in any fence has all of them neutralised, not only its own.
FENCE_TAGS = frozenset({"excerpt", "screen"})
# Control tokens written as tags: SentencePiece's and Gemma's, and those of the packaged SmolLM2 vocabulary
# (StarCoder's), which llama.cpp parses in content. ``<|...|>`` tokens are caught whatever their name.
_CONTROL_TAGS = frozenset(
    {"s", "bos", "eos", "pad", "unk", "mask", "sys", "start_of_turn", "end_of_turn"}
    | {"repo_name", "reponame", "file_sep", "filename", "gh_stars", "issue_start", "issue_comment"}
    | {"issue_closed", "jupyter_start", "jupyter_text", "jupyter_code", "jupyter_output", "jupyter_script"}
    | {"empty_output"}
)
_TAG_NAMES = FENCE_TAGS | _CONTROL_TAGS
# Mistral's control tokens.
_SQUARE_NAMES = frozenset(
    {"inst", "system_prompt", "available_tools", "tool_calls", "tool_results", "tool_content"}
)

# What a model or a tokenizer may read as "<", ">", "[", "]", "/" and "|": the ASCII character, those NFKC
# turns into it (fullwidth, small and vertical forms), and angle brackets that look alike (CJK, mathematical
# and quotation angle brackets).
_LT = "<\uff1c\ufe64\u2329\u3008\u27e8\u2039"
_GT = ">\uff1e\ufe65\u232a\u3009\u27e9\u203a"
_LSQ = "[\uff3b\ufe47"
_RSQ = "]\uff3d\ufe48"
_SLASH = "/\uff0f\u2215\u2044"
_PIPE = "|\uff5c"
# Invisible characters that could split a name without changing what a reader sees.
_INVISIBLE = "\u00ad\u200b\u200c\u200d\u2060\ufeff"
# Brackets are swapped, not deleted or escaped, so the text still reads as it did: for modifier-letter
# arrowheads (U+02C2, U+02C3) and square brackets with quill (U+2045, U+2046). No tokenizer, NFKC
# normalisation or chat template treats those as brackets, and none is in the sets above, so neutralising
# twice changes nothing.
_DEFUSE = str.maketrans(
    dict.fromkeys(_LT, "\u02c2")
    | dict.fromkeys(_GT, "\u02c3")
    | dict.fromkeys(_LSQ, "\u2045")
    | dict.fromkeys(_RSQ, "\u2046")
)

_LT_RE = f"[{re.escape(_LT)}]"
_GT_RE = f"[{re.escape(_GT)}]"
_PIPE_RE = f"[{re.escape(_PIPE)}]"
_SLASH_RE = f"[{re.escape(_SLASH)}]"
_LSQ_RE = f"[{re.escape(_LSQ)}]"
_RSQ_RE = f"[{re.escape(_RSQ)}]"
_GAP = rf"[\s{_INVISIBLE}]*"
_NAME = rf"[\w{_INVISIBLE}]+"
_NOT_BRACKET = f"[^{re.escape(_LT + _GT + _LSQ + _RSQ)}]"
_CONTROL = re.compile(
    # <|im_start|>, and DeepSeek's fullwidth-bar tokens: a control token whatever the name.
    rf"{_LT_RE}{_GAP}{_PIPE_RE}[^{re.escape(_LT + _GT + _PIPE)}\n]{{0,64}}{_PIPE_RE}{_GAP}{_GT_RE}"
    # <screen>, </ excerpt >, <screen a="b">, <</SYS>>: a tag, kept unless its name is in the lists above. A
    # tag that never closes loses its "<" all the same, since a reader may take it for one.
    rf"|{_LT_RE}{{1,2}}{_GAP}{_SLASH_RE}?{_GAP}(?P<tag>{_NAME})(?=[\s{re.escape(_SLASH + _GT)}]|$)"
    rf"(?:{_NOT_BRACKET}{{0,200}}?{_GT_RE}{{1,2}})?"
    # [INST], [/INST]
    rf"|{_LSQ_RE}{_GAP}{_SLASH_RE}?{_GAP}(?P<square>{_NAME}){_GAP}{_RSQ_RE}"
)


def neutralize(text: str) -> str:
    """``text`` with the brackets of every fence tag and control token swapped for harmless look-alikes.

    Caught whatever the case, spacing, invisible characters, NFKC form (fullwidth letters and brackets) or
    look-alike brackets. Every other character stays as it was: ``a < b``, ``<div>``, ``，。：``.
    """
    return _CONTROL.sub(_defuse, text)


def fence(tag: str, text: str, fields: Mapping[str, str] | None = None) -> str:
    """Untrusted ``text`` as data between ``<tag>`` and ``</tag>``, after one ``label: value`` line per field.

    Fields with an empty value are left out. Everything but the labels (which are the caller's own) is
    neutralised, and each value kept to one line, so nothing inside can leave the fence or pass for a field.
    """
    if tag not in FENCE_TAGS:
        raise ValueError(f"unknown fence {tag!r}: add it to FENCE_TAGS so that every fence neutralises it")
    header = "\n".join(
        f"{label}: {' '.join(neutralize(value).split())}"
        for label, value in (fields or {}).items()
        if value.strip()
    )
    body = "\n\n".join(part for part in (header, neutralize(text)) if part)
    return f"<{tag}>\n{body}\n</{tag}>"


def layout(system: str, *, context: str, request: str) -> tuple[ChatMessage, ...]:
    user = f"{context}\n\n{request}" if context else request
    return ChatMessage("system", system), ChatMessage("user", user)


def _defuse(match: re.Match[str]) -> str:
    if match["tag"] is not None and _canonical(match["tag"]) not in _TAG_NAMES:
        return match[0]
    if match["square"] is not None and _canonical(match["square"]) not in _SQUARE_NAMES:
        return match[0]
    return match[0].translate(_DEFUSE)


def _canonical(name: str) -> str:
    return "".join(ch for ch in unicodedata.normalize("NFKC", name) if ch not in _INVISIBLE).casefold()

"""What a workflow checks on the desktop rather than does: whether a file exists (FileExists) and whether a
window shows a text (FindText, WaitFor.text_in_window).

* **FileExists** looks only under the desktop user's home and the agent's temp dir: the path (absolute,
  or starting with ``~/``) is resolved, links included, before it is compared, so ``..`` or a link
  cannot lead elsewhere. It reports whether something is there, what (file, directory, other) and a
  file's size; it never reads the file.
* **FindText** reads the window's accessible text as the accessibility sensor does (showing text in
  reading order; never password fields, single-line inputs or private windows) and looks for the
  first line that contains ``text`` (case-sensitive) or matches the RE2 ``pattern`` (linear time;
  a pattern RE2 cannot run that way is refused with its reason).
"""

from __future__ import annotations

import stat
from pathlib import Path

import re2

from protos.shadowdesk.v1 import ingest_pb2 as pb
from session_agent.errors import ActionFailedError, ActionRefusedError
from session_agent.executor.elements import Accessibility
from session_agent.executor.protocol import ActionContext, cut
from session_agent.sensors.accessibility import TreeReader, WalkLimits
from session_agent.sensors.window import WindowInfo

MAX_PATTERN_CHARS = 1024
_PATTERN_MEMORY = 1 << 20


class TextQuery:
    """A compiled FindText: ``text`` as a substring, or ``pattern`` as an RE2 regular expression."""

    def __init__(self, query: pb.FindText) -> None:
        if bool(query.text) == bool(query.pattern):
            raise ActionRefusedError("FindText needs exactly one of text and pattern")
        self._text = query.text
        self._regex = _compile(query.pattern) if query.pattern else None

    def first(self, page: str) -> tuple[str, str] | None:
        """(line, matched text) of the first line that has it; the pattern's first group, when it has one,
        is the matched text."""
        for line in page.splitlines():
            if self._regex is None:
                if self._text in line:
                    return line, self._text
                continue
            match = self._regex.search(line)
            if match is not None:
                groups = [group for group in match.groups() if group is not None]
                return line, groups[0] if groups else match.group(0)
        return None


def _compile(pattern: str) -> re2._Regexp:
    if len(pattern) > MAX_PATTERN_CHARS:
        raise ActionRefusedError(f"pattern over {MAX_PATTERN_CHARS} characters")
    options = re2.Options()
    options.log_errors = False
    options.max_mem = _PATTERN_MEMORY
    try:
        return re2.compile(pattern, options)
    except re2.error as exc:
        reason = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else exc
        raise ActionRefusedError(
            f"invalid pattern {pattern!r} (RE2 syntax, no backreferences or lookaround): {reason}"
        ) from None


def find_text(
    a11y: Accessibility, window: WindowInfo, query: TextQuery, context: ActionContext, *, walk_s: float = 2.0
) -> dict[str, str] | None:
    """What ``query`` found in the window's accessible text, as observed values; None when nothing.

    The walk takes at most ``walk_s`` (and the command's remaining time). A walk a limit cut short
    that found nothing raises ActionFailedError: "not there" would be a guess."""
    frame = a11y.frame(window)
    if frame is None:
        return None
    limits = WalkLimits(deadline_s=max(0.1, min(walk_s, context.remaining())))
    page, cut_short = TreeReader(a11y.client, limits).read(frame)
    found = query.first(page.text)
    if found is None:
        if cut_short:
            raise ActionFailedError("the window's text could not be read in full before the deadline")
        return None
    line, matched = found
    return {"found": "true", "text": cut(line)[0], "match": cut(matched)[0]}


def file_exists(raw: str, roots: list[Path]) -> dict[str, str]:
    """Whether ``raw`` exists under one of ``roots``; ActionRefusedError for a path outside them."""
    if not raw or "\x00" in raw:
        raise ActionRefusedError("FileExists needs a path")
    path = Path(raw).expanduser()
    if not path.is_absolute():
        raise ActionRefusedError("FileExists takes an absolute path or one starting with ~/")
    try:
        resolved = path.resolve(strict=False)
    except (OSError, RuntimeError) as exc:  # a link loop
        raise ActionFailedError(f"cannot resolve {raw!r}: {exc}") from exc
    if not any(resolved.is_relative_to(root.resolve()) for root in roots):
        raise ActionRefusedError("FileExists looks only under the user's home and temp directories")
    try:
        info = resolved.stat()
    except FileNotFoundError:
        return {"exists": "false", "path": str(resolved)}
    except OSError as exc:
        raise ActionFailedError(f"cannot look at {raw!r}: {exc.strerror}") from exc
    kind = "file" if stat.S_ISREG(info.st_mode) else "directory" if stat.S_ISDIR(info.st_mode) else "other"
    observed = {"exists": "true", "path": str(resolved), "kind": kind}
    if kind == "file":
        observed["size"] = str(info.st_size)
    return observed

"""LLM rewriting of vague queries into search keywords, used only when a search finds nothing.

A question such as "that thing about paying the consultants" may share no word with the screen text
("Invoice", "Consulting services"). When the configured model is declared capable
(``LLMSettings.capable``) and a search returns no hit, the model suggests keywords and the search runs
once more with the query *and* them; the response labels them (``ParsedQuery.rewritten``). Search never
depends on it: a slow, failing or absent model leaves the original (empty) result.

A small model may answer with an unrelated sentence, and searching that turns "nothing found" into
wrong hits. So the suggestion is checked against the query: it is dropped unless one of its words is
one of the query's (the model may add words, not change the subject), and it is kept to ``_MAX_WORDS``
words.
"""

from __future__ import annotations

import logging

from cloud_infer.llm.backend import ChatMessage
from cloud_infer.llm.errors import LLMError
from cloud_infer.llm.gateway import LLMGateway
from cloud_infer.llm.prompts import neutralize
from cloud_infer.recall.text import query_terms

logger = logging.getLogger(__name__)

SYSTEM_PROMPT = (
    "You turn a person's vague search of their own screen history into search keywords. Reply with 3 to 8 "
    "keywords that words on such a screen would contain, separated by spaces, in the language of the "
    "search, and nothing else."
)
_MAX_CHARS = 200
_MAX_WORDS = 8


class QueryRewriter:
    def __init__(self, llm: LLMGateway, max_tokens: int = 32, deadline_s: float = 5.0) -> None:
        self._llm = llm
        self._max_tokens = max_tokens
        self._deadline_s = deadline_s

    async def rewrite(self, user_id: str, query: str) -> str:
        """Keywords for ``query``, or "" when the model fails or says nothing usable."""
        # The query is the user's own, but it must not be able to speak the chat template's control tokens.
        messages = [ChatMessage("system", SYSTEM_PROMPT), ChatMessage("user", neutralize(query))]
        try:
            answer = await self._llm.complete(
                user_id,
                messages,
                feature="recall.rewrite",
                max_tokens=self._max_tokens,
                deadline_s=self._deadline_s,
            )
        except LLMError as exc:
            logger.info("query rewrite skipped: %s", exc)
            return ""
        return checked_keywords(query, answer)


def checked_keywords(query: str, answer: str) -> str:
    """The model's keywords for ``query``: "" unless they add to it and share one of its words."""
    asked = set(query_terms(query))
    suggested = query_terms(answer.replace(",", " ")[:_MAX_CHARS])[:_MAX_WORDS]
    if not asked & set(suggested) or set(suggested) <= asked:
        return ""
    return " ".join(suggested)

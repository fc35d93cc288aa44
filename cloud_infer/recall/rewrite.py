"""LLM rewriting of vague queries into search keywords, used only when a search finds nothing.

A question such as "that thing about paying the consultants" may share no word with the screen text
("Invoice", "Consulting services"). When the configured model is present and a search returns no hit,
the model turns the query into keywords and the search runs once more with them. Search never depends
on it: a slow, failing or absent model leaves the original (empty) result.
"""

from __future__ import annotations

import logging

from cloud_infer.llm.backend import ChatMessage
from cloud_infer.llm.errors import LLMError
from cloud_infer.llm.gateway import LLMGateway
from cloud_infer.llm.prompts import neutralize

logger = logging.getLogger(__name__)

SYSTEM_PROMPT = (
    "You turn a person's vague search of their own screen history into search keywords. Reply with 3 to 8 "
    "keywords that words on such a screen would contain, separated by spaces, in the language of the "
    "search, and nothing else."
)
_MAX_CHARS = 200


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
        keywords = " ".join(answer.replace(",", " ").split())[:_MAX_CHARS]
        return "" if keywords.lower() == query.strip().lower() else keywords

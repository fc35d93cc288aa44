"""Token accounting per user and feature, kept by the gateway for every request it serves.

Totals live in this process (and reset with it); the same counts go to OpenTelemetry metrics with the user
as an attribute, which is where a deployment keeps them for billing and quotas.
"""

from __future__ import annotations

from collections import defaultdict

from pydantic import BaseModel


class FeatureUsage(BaseModel):
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    embedded_texts: int = 0


class UsageReport(BaseModel):
    """One user's use of the LLM gateway since this server started."""

    requests: int
    prompt_tokens: int
    completion_tokens: int
    embedded_texts: int
    features: dict[str, FeatureUsage]


class TokenLedger:
    def __init__(self) -> None:
        self._users: defaultdict[str, defaultdict[str, FeatureUsage]] = defaultdict(
            lambda: defaultdict(FeatureUsage)
        )

    def record_chat(self, user_id: str, feature: str, prompt_tokens: int, completion_tokens: int) -> None:
        usage = self._users[user_id][feature]
        usage.requests += 1
        usage.prompt_tokens += prompt_tokens
        usage.completion_tokens += completion_tokens

    def record_embedding(self, user_id: str, feature: str, texts: int) -> None:
        usage = self._users[user_id][feature]
        usage.requests += 1
        usage.embedded_texts += texts

    def report(self, user_id: str) -> UsageReport:
        features = {name: usage.model_copy() for name, usage in self._users.get(user_id, {}).items()}
        return UsageReport(
            requests=sum(f.requests for f in features.values()),
            prompt_tokens=sum(f.prompt_tokens for f in features.values()),
            completion_tokens=sum(f.completion_tokens for f in features.values()),
            embedded_texts=sum(f.embedded_texts for f in features.values()),
            features=features,
        )

"""Errors of workflows (recording, compiling, the macro store), under ``cloud_infer.errors``' tree.

InvalidMessageError (cloud_infer.errors)
└── ProgramInvalidError     a macro document is not a valid program: ``problems`` lists each
                            ``{path, message}`` for the editor to show inline (HTTP 400)

Everything else is one of ``cloud_infer.errors``: NotFoundError (no such macro or recording of the
caller), PermissionDeniedError, RateLimitedError, BackendUnavailableError.
"""

from __future__ import annotations

from pydantic import BaseModel

from cloud_infer.errors import InvalidMessageError


class Problem(BaseModel):
    """One thing wrong with a document: where (``steps.3.target``, "" for the whole) and what."""

    path: str
    message: str


class ProgramInvalidError(InvalidMessageError):
    def __init__(self, problems: list[Problem]) -> None:
        first = problems[0] if problems else Problem(path="", message="invalid")
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(f"{first.path or 'document'}: {first.message}{more}")
        self.problems = problems

"""Naming rule for per-user spaces and object keys (documented in docs/storage.md).

Every user gets a space of their own: a bucket named ``sdu-`` + the first 32 hex digits of
SHA-256(user id) (38 characters, valid for S3 and MinIO, and it does not reveal the user id). The
embedded local backend uses the same name as a directory. Keys are relative paths of safe
characters; nothing outside a user's space can be named through them.

One more space, ``SYSTEM_SPACE``, holds what belongs to no single user (the user directory, token
revocations). Its id starts with ``@``, which no user id may, so no token can ever name it, and its
bucket (``sdu-system``) can never equal a user's (those end in 32 hex digits).
"""

from __future__ import annotations

import hashlib
import re

from recall_store.errors import InvalidNameError

BUCKET_PREFIX = "sdu-"
SYSTEM_SPACE = "@system"
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$")
_KEY_SEGMENT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._=@-]{0,199}$")
MAX_KEY_LENGTH = 512


def validate_id(kind: str, value: str) -> str:
    """Return ``value`` if it is a valid user or session id, else raise InvalidNameError."""
    if not _ID_RE.fullmatch(value):
        raise InvalidNameError(f"{kind} must be 1-128 characters of [A-Za-z0-9._@-], got {value!r}")
    return value


def user_bucket(user_id: str) -> str:
    """The bucket (or local directory) that holds everything of ``user_id`` (or the system space)."""
    if user_id == SYSTEM_SPACE:
        return BUCKET_PREFIX + "system"
    validate_id("user id", user_id)
    return BUCKET_PREFIX + hashlib.sha256(user_id.encode()).hexdigest()[:32]


def validate_key(key: str) -> str:
    """Return ``key`` if it is a relative path of safe segments, else raise InvalidNameError."""
    if len(key) > MAX_KEY_LENGTH or not all(_KEY_SEGMENT_RE.fullmatch(part) for part in key.split("/")):
        raise InvalidNameError(f"invalid object key {key!r}")
    return key


def validate_prefix(prefix: str) -> str:
    """A listing prefix: empty, or a key optionally ending in '/'."""
    if prefix:
        validate_key(prefix.removesuffix("/"))
    return prefix

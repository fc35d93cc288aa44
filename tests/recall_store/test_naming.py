"""The per-user bucket naming rule and key validation."""

from __future__ import annotations

import hashlib
import re

import pytest

from recall_store import InvalidNameError, user_bucket, validate_id, validate_key, validate_prefix
from recall_store.naming import BUCKET_PREFIX

# S3 bucket names: 3-63 chars of lowercase letters, digits, '.', '-', starting and ending alphanumeric.
S3_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


@pytest.mark.parametrize("user_id", ["u", "alice@example.com", "User.Name-1_x", "9" * 128])
def test_user_bucket_is_a_valid_s3_name_that_hides_the_id(user_id: str) -> None:
    bucket = user_bucket(user_id)
    assert S3_BUCKET_RE.fullmatch(bucket)
    assert bucket == BUCKET_PREFIX + hashlib.sha256(user_id.encode()).hexdigest()[:32]
    assert len(bucket) == 36
    assert "alice" not in bucket


def test_user_bucket_is_stable_and_distinct() -> None:
    assert user_bucket("alice") == user_bucket("alice")
    assert user_bucket("alice") != user_bucket("Alice")
    assert len({user_bucket(f"user{n}") for n in range(1000)}) == 1000


@pytest.mark.parametrize("user_id", ["", "../u", "a/b", ".u", "-u", "u\n", "u u", "é", "x" * 129])
def test_bad_ids_are_rejected(user_id: str) -> None:
    with pytest.raises(InvalidNameError, match="user id"):
        user_bucket(user_id)
    with pytest.raises(InvalidNameError, match="session id"):
        validate_id("session id", user_id)


@pytest.mark.parametrize(
    "key",
    [
        "a",
        "a_b",
        "events/s1/000000000001-000000000002.1700000000000-1700000000001.pb",
        "frames/s-1/000000000007.webp",
        "a=b/c.d-e",
        "/".join(["s"] * 100),
    ],
)
def test_good_keys_pass(key: str) -> None:
    assert validate_key(key) == key


@pytest.mark.parametrize(
    "key",
    [
        "",
        "/abs",
        "../x",
        "a/../b",
        "a/./b",
        "a//b",
        "a/",
        ".hidden",
        "a b",
        "a\\b",
        "k\x00",
        "é",
        "x" * 201,
        "/".join(["ab"] * 200),
    ],
)
def test_bad_keys_are_rejected(key: str) -> None:
    with pytest.raises(InvalidNameError):
        validate_key(key)


def test_prefixes_may_be_empty_or_end_in_a_slash() -> None:
    assert validate_prefix("") == ""
    assert validate_prefix("events/s1/") == "events/s1/"
    assert validate_prefix("events/s1") == "events/s1"
    for bad in ("/", "../", "events//", "a/../"):
        with pytest.raises(InvalidNameError):
            validate_prefix(bad)


def test_invalid_name_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        validate_key("../x")

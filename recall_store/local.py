"""Embedded filesystem backend: ``<root>/<user_bucket>/<key>``, for a one-machine demo.

A put is durable before it returns: the bytes go to a temp file in the target directory, which is
fsynced, renamed over the target and followed by an fsync of the directory, so a crash leaves either
the old or the new object, never a torn one. Temp files start with '.', which no valid key segment
does, so listings never show them. Unlike S3, a key cannot be both an object and a prefix of another
key ('a' and 'a/b'); such a put is refused with InvalidNameError.

Only the user running the store can read what it keeps: objects are created 0600 (by mkstemp) and
every directory the store creates is set to 0700, whatever the process umask. Directories that already
existed keep their mode. LanceDB writes the index files under the same root with the process umask,
which is why the server sets its umask to 077 (``cloud_infer.server.serve``).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import logging
import os
import tempfile
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from opentelemetry import trace

from recall_store.errors import InvalidNameError, ObjectNotFoundError, StoreError, StoreUnavailableError
from recall_store.naming import user_bucket, validate_key, validate_prefix

logger = logging.getLogger(__name__)
_tracer = trace.get_tracer(__name__)
_T = TypeVar("_T")
_DIR_MODE = 0o700


class _KeyClashError(Exception):
    """A put needs a directory where an object is, or an object where a directory is."""


class LocalObjectStore:
    """ObjectStore on a local directory; blocking I/O runs in a bounded thread pool."""

    def __init__(self, root: Path, workers: int = 16) -> None:
        self._root = root.expanduser()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="recall-local")
        self._closed = False

    async def put(
        self, user_id: str, key: str, data: bytes, content_type: str = "application/octet-stream"
    ) -> None:
        space = self._root / user_bucket(user_id)
        validate_key(key)
        try:
            await self._run("put", _put_durably, space, key, data)
        except _KeyClashError as exc:
            raise InvalidNameError(
                f"key {key!r} clashes with an existing object or prefix of the same name"
            ) from exc
        except OSError as exc:
            raise _unavailable("put", exc) from exc

    async def get(self, user_id: str, key: str) -> bytes:
        path = self._path(user_id, key)
        try:
            return await self._run("get", path.read_bytes)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as exc:
            raise ObjectNotFoundError(key) from exc
        except OSError as exc:
            raise _unavailable("get", exc) from exc

    async def list_keys(self, user_id: str, prefix: str = "", start_after: str = "") -> list[str]:
        base = self._root / user_bucket(user_id)
        validate_prefix(prefix)
        try:
            return await self._run("list", _list_sorted, base, prefix, start_after)
        except OSError as exc:
            raise _unavailable("list", exc) from exc

    async def usage(self, user_id: str) -> int:
        try:
            return await self._run("usage", _tree_size, self._root / user_bucket(user_id))
        except OSError as exc:
            raise _unavailable("usage", exc) from exc

    async def delete(self, user_id: str, keys: Iterable[str]) -> None:
        paths = [self._path(user_id, key) for key in keys]
        if not paths:
            return
        try:
            await self._run("delete", _delete_durably, paths)
        except OSError as exc:
            raise _unavailable("delete", exc) from exc

    async def check(self) -> None:
        try:
            await self._run("check", _probe_writable, self._root)
        except OSError as exc:
            raise _unavailable("check", exc) from exc

    async def close(self) -> None:
        self._closed = True
        await asyncio.to_thread(self._pool.shutdown, wait=True)

    def _path(self, user_id: str, key: str) -> Path:
        return self._root / user_bucket(user_id) / validate_key(key)

    async def _run(self, op: str, fn: Callable[..., _T], *args: object) -> _T:
        if self._closed:
            raise StoreUnavailableError("the local store is closed")
        with _tracer.start_as_current_span(f"recall_store.local.{op}"):
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._pool, functools.partial(fn, *args))


def _unavailable(op: str, exc: OSError) -> StoreError:
    logger.warning("local store %s failed: %s", op, exc)
    return StoreUnavailableError(f"local store {op} failed: {os.strerror(exc.errno or 0)} ({exc})")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _make_dirs_durably(path: Path) -> None:
    """mkdir -p that also fsyncs each parent that gained an entry, so new directories survive a crash."""
    if path.is_dir():
        return
    _make_dirs_durably(path.parent)
    try:
        path.mkdir(mode=_DIR_MODE)
    except FileExistsError:
        if path.is_dir():
            return  # a concurrent put created it
        raise NotADirectoryError(errno.ENOTDIR, "an object has the name of this prefix", str(path)) from None
    os.chmod(path, _DIR_MODE)  # mkdir's mode is masked by the umask; this one is exact
    _fsync_dir(path.parent)


def _put_durably(space: Path, key: str, data: bytes) -> None:
    path = space / key
    _make_dirs_durably(space)
    try:
        _make_dirs_durably(path.parent)
    except (NotADirectoryError, FileExistsError) as exc:
        raise _KeyClashError from exc
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, IsADirectoryError):
            raise _KeyClashError from exc
        raise
    _fsync_dir(path.parent)


def _list_sorted(base: Path, prefix: str, start_after: str) -> list[str]:
    # Only the directory named by the prefix up to its last '/' can hold matches.
    top = base / prefix.rpartition("/")[0]

    def reraise_unless_gone(exc: OSError) -> None:
        if not isinstance(exc, FileNotFoundError | NotADirectoryError):
            raise exc

    keys: list[str] = []
    for dirpath, _dirs, files in os.walk(top, onerror=reraise_unless_gone):
        rel_dir = Path(dirpath).relative_to(base).as_posix()
        for name in files:
            if name.startswith("."):
                continue  # temp file of an in-flight put; no key segment starts with '.'
            key = name if rel_dir == "." else f"{rel_dir}/{name}"
            if key.startswith(prefix) and key > start_after:
                keys.append(key)
    # Keys are ASCII, so str order is byte order, the order S3 lists in.
    return sorted(keys)


def _tree_size(base: Path) -> int:
    return sum(
        (Path(dirpath) / name).stat().st_size for dirpath, _dirs, files in os.walk(base) for name in files
    )


def _delete_durably(paths: list[Path]) -> None:
    for path in paths:
        with contextlib.suppress(FileNotFoundError, NotADirectoryError, IsADirectoryError):
            path.unlink()
    for directory in {path.parent for path in paths}:
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            _fsync_dir(directory)


def _probe_writable(root: Path) -> None:
    _make_dirs_durably(root)
    with tempfile.TemporaryFile(dir=root, prefix=".probe-"):
        pass

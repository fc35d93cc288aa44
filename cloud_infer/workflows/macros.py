"""The macro store: each user's macros as versioned YAML documents in their own space.

* ``workflows/macros/<macro_id>/v<version:06d>.yaml``: every saved version, as the user wrote it
  (comments and layout kept), validated before it is stored; each save is a new version;
* ``workflows/macros/index.json``: the user's macros (name, latest version, when, from which recording),
  rewritten under the user's lock after every change, so listing reads one object.

A document is parsed without YAML aliases or deep nesting (a small document cannot expand into a huge
one) and validated against ``Program``; what is wrong comes back as a list of ``{path, message}``
(``ProgramInvalidError``) for the editor to show inline. This process is the only writer of its users'
macros, as for every other per-user object the server keeps.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import yaml
from pydantic import BaseModel, Field, ValidationError

from cloud_infer.errors import BackendUnavailableError, NotFoundError, RateLimitedError
from cloud_infer.workflows.errors import Problem, ProgramInvalidError
from cloud_infer.workflows.program import Program, to_yaml
from recall_store.errors import ObjectNotFoundError, StoreError
from recall_store.naming import validate_key
from recall_store.store import ObjectStore

MACROS_PREFIX = "workflows/macros/"
INDEX_KEY = validate_key(f"{MACROS_PREFIX}index.json")
MAX_DOCUMENT_BYTES = 256 * 1024
MAX_MACROS = 500
MAX_VERSIONS = 200
_MAX_DEPTH = 32
_YAML = "application/yaml"


def new_macro_id() -> str:
    return uuid.uuid4().hex


def _version_key(macro_id: str, version: int) -> str:
    return validate_key(f"{MACROS_PREFIX}{macro_id}/v{version:06d}.yaml")


class MacroSummary(BaseModel):
    macro_id: str
    name: str
    version: int
    updated_ns: int
    recording_id: str = ""


class _Index(BaseModel):
    macros: dict[str, MacroSummary] = Field(default_factory=dict)


class Macro(BaseModel):
    """One version of a macro: the document as stored and the program it validates to."""

    macro_id: str
    version: int
    document: str
    program: Program
    versions: list[int]


def parse_document(text: str) -> Program:
    """The program a YAML document describes; ProgramInvalidError with every problem found."""
    if len(text.encode()) > MAX_DOCUMENT_BYTES:
        raise ProgramInvalidError(
            [Problem(path="", message=f"the document is over {MAX_DOCUMENT_BYTES} bytes")]
        )
    try:
        _check_events(yaml.parse(text, Loader=yaml.SafeLoader))
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ProgramInvalidError([Problem(path="", message=f"{where}{problem}"[:500])]) from None
    if not isinstance(data, dict):
        raise ProgramInvalidError(
            [Problem(path="", message="the document must be a mapping (version, name, steps)")]
        )
    try:
        return Program.model_validate(data)
    except ValidationError as exc:
        problems = [
            Problem(path=".".join(str(p) for p in error["loc"]), message=error["msg"][:500])
            for error in exc.errors(include_url=False, include_input=False)
        ]
        raise ProgramInvalidError(problems[:100]) from None


def _check_events(events: Iterator[yaml.Event]) -> None:
    depth = 0
    for event in events:
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            raise yaml.YAMLError("anchors and aliases (&, *) are not allowed in a macro document")
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > _MAX_DEPTH:
                raise yaml.YAMLError(f"the document nests deeper than {_MAX_DEPTH} levels")
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


class MacroStore:
    def __init__(self, store: ObjectStore) -> None:
        self._store = store
        self._locks: dict[str, asyncio.Lock] = {}

    async def save(self, user_id: str, macro_id: str, document: str, *, recording_id: str = "") -> Macro:
        """Store ``document`` as the next version of ``macro_id`` (its first, for a new id)."""
        program = parse_document(document)
        async with self._editing(user_id) as index:
            summary = index.macros.get(macro_id)
            if summary is None and len(index.macros) >= MAX_MACROS:
                raise RateLimitedError(f"you have {MAX_MACROS} macros; delete some first", retry_after_s=60.0)
            version = summary.version + 1 if summary else 1
            if version > MAX_VERSIONS:
                await self._prune(user_id, macro_id, version)
            await self._store.put(user_id, _version_key(macro_id, version), document.encode(), _YAML)
            index.macros[macro_id] = MacroSummary(
                macro_id=macro_id,
                name=program.name,
                version=version,
                updated_ns=time.time_ns(),
                recording_id=recording_id or (summary.recording_id if summary else ""),
            )
        return Macro(
            macro_id=macro_id,
            version=version,
            document=document,
            program=program,
            versions=await self._versions(user_id, macro_id),
        )

    async def save_program(self, user_id: str, program: Program, *, recording_id: str = "") -> Macro:
        """A new macro from a compiled program."""
        return await self.save(user_id, new_macro_id(), to_yaml(program), recording_id=recording_id)

    async def list_macros(self, user_id: str) -> list[MacroSummary]:
        index = await self._load_index(user_id)
        return sorted(index.macros.values(), key=lambda m: m.updated_ns, reverse=True)

    async def get(self, user_id: str, macro_id: str, version: int | None = None) -> Macro:
        """The macro's latest version (or ``version``); NotFoundError when the user has no such macro."""
        index = await self._load_index(user_id)
        summary = index.macros.get(macro_id)
        if summary is None:
            raise NotFoundError(f"no macro {macro_id[:64]!r}")
        version = summary.version if version is None else version
        try:
            data = await self._store.get(user_id, _version_key(macro_id, version))
        except ObjectNotFoundError:
            raise NotFoundError(f"macro {macro_id[:64]!r} has no version {version}") from None
        except StoreError as exc:
            raise BackendUnavailableError(f"recall store unavailable: {exc}") from exc
        document = data.decode()
        return Macro(
            macro_id=macro_id,
            version=version,
            document=document,
            program=parse_document(document),
            versions=await self._versions(user_id, macro_id),
        )

    async def program(self, user_id: str, macro_id: str) -> Program:
        """The latest program of the macro (what the runner runs)."""
        return (await self.get(user_id, macro_id)).program

    async def delete(self, user_id: str, macro_id: str) -> None:
        """Delete every version; NotFoundError when there is no such macro."""
        async with self._editing(user_id) as index:
            if index.macros.pop(macro_id, None) is None:
                raise NotFoundError(f"no macro {macro_id[:64]!r}")
            keys = await self._store.list_keys(user_id, f"{MACROS_PREFIX}{macro_id}/")
            await self._store.delete(user_id, keys)

    # --- internals ------------------------------------------------------------------------------

    @asynccontextmanager
    async def _editing(self, user_id: str) -> AsyncIterator[_Index]:
        lock = self._locks.setdefault(user_id, asyncio.Lock())
        async with lock:
            index = await self._load_index(user_id)
            yield index
            try:
                await self._store.put(
                    user_id, INDEX_KEY, index.model_dump_json().encode(), "application/json"
                )
            except StoreError as exc:
                raise BackendUnavailableError(f"recall store unavailable: {exc}") from exc

    async def _load_index(self, user_id: str) -> _Index:
        try:
            return _Index.model_validate_json(await self._store.get(user_id, INDEX_KEY))
        except ObjectNotFoundError:
            return _Index()
        except StoreError as exc:
            raise BackendUnavailableError(f"recall store unavailable: {exc}") from exc

    async def _versions(self, user_id: str, macro_id: str) -> list[int]:
        keys = await self._store.list_keys(user_id, f"{MACROS_PREFIX}{macro_id}/")
        return sorted(int(k.rsplit("/v", 1)[1].removesuffix(".yaml")) for k in keys if k.endswith(".yaml"))

    async def _prune(self, user_id: str, macro_id: str, version: int) -> None:
        """Keep the newest MAX_VERSIONS - 1 versions before storing ``version``."""
        old = [v for v in await self._versions(user_id, macro_id) if v <= version - MAX_VERSIONS]
        await self._store.delete(user_id, [_version_key(macro_id, v) for v in old])

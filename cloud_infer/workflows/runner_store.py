"""Where runs live: in their user's space, with an index of the unfinished ones in the system space.

* ``workflows/runs/<run_id>/state.json`` (user's space): the run's ``RunState``, rewritten after every
  phase of every step;
* ``workflows/runs/<run_id>/steps/<index:06d>.json`` (user's space): one ``StepTrace`` per try of a step;
* ``workflow-runs/<user_id>/<run_id>`` (system space, empty): the run is not finished, so a server that
  starts resumes it. Written before the run's first state, removed after its final one.

Run ids start with the hex time of their start, so listing a user's runs lists them oldest first.
"""

from __future__ import annotations

import os
import time

from pydantic import ValidationError

from cloud_infer.errors import BackendUnavailableError, NotFoundError
from cloud_infer.workflows.runner_protocol import RunState, StepTrace
from recall_store.errors import ObjectNotFoundError, StoreError
from recall_store.naming import SYSTEM_SPACE, validate_key
from recall_store.store import ObjectStore

RUNS_PREFIX = "workflows/runs/"
ACTIVE_PREFIX = "workflow-runs/"
_JSON = "application/json"


def new_run_id() -> str:
    return f"{time.time_ns():016x}{os.urandom(8).hex()}"


def _state_key(run_id: str) -> str:
    return validate_key(f"{RUNS_PREFIX}{run_id}/state.json")


def _trace_key(run_id: str, index: int) -> str:
    return validate_key(f"{RUNS_PREFIX}{run_id}/steps/{index:06d}.json")


class RunStore:
    def __init__(self, store: ObjectStore) -> None:
        self._store = store

    async def save(self, state: RunState) -> None:
        """Store the state durably; the active index follows whether it is finished."""
        try:
            if not state.status.final:
                await self._store.put(SYSTEM_SPACE, self._active_key(state), b"", _JSON)
            await self._store.put(
                state.user_id, _state_key(state.run_id), state.model_dump_json().encode(), _JSON
            )
            if state.status.final:
                await self._store.delete(SYSTEM_SPACE, [self._active_key(state)])
        except StoreError as exc:
            raise BackendUnavailableError(f"recall store unavailable: {exc}") from exc

    async def add_trace(self, state: RunState, trace: StepTrace) -> None:
        try:
            await self._store.put(
                state.user_id, _trace_key(state.run_id, trace.index), trace.model_dump_json().encode(), _JSON
            )
        except StoreError as exc:
            raise BackendUnavailableError(f"recall store unavailable: {exc}") from exc

    async def load(self, user_id: str, run_id: str) -> RunState:
        """The user's run; NotFoundError when they have none of that id."""
        try:
            data = await self._store.get(user_id, _state_key(run_id))
        except ObjectNotFoundError:
            raise NotFoundError(f"no run {run_id!r}") from None
        except StoreError as exc:
            raise BackendUnavailableError(f"recall store unavailable: {exc}") from exc
        return RunState.model_validate_json(data)

    async def traces(self, user_id: str, run_id: str) -> list[StepTrace]:
        try:
            keys = await self._store.list_keys(user_id, f"{RUNS_PREFIX}{run_id}/steps/")
            return [StepTrace.model_validate_json(await self._store.get(user_id, key)) for key in keys]
        except StoreError as exc:
            raise BackendUnavailableError(f"recall store unavailable: {exc}") from exc

    async def recent(self, user_id: str, limit: int) -> list[RunState]:
        """The user's newest ``limit`` runs, newest first."""
        try:
            keys = await self._store.list_keys(user_id, RUNS_PREFIX)
            state_keys = [key for key in keys if key.endswith("/state.json")][-limit:]
            states = []
            for key in reversed(state_keys):
                try:
                    states.append(RunState.model_validate_json(await self._store.get(user_id, key)))
                except (ObjectNotFoundError, ValidationError):
                    continue
            return states
        except StoreError as exc:
            raise BackendUnavailableError(f"recall store unavailable: {exc}") from exc

    async def unfinished(self) -> list[tuple[str, str]]:
        """(user id, run id) of every run the index says is not finished."""
        try:
            keys = await self._store.list_keys(SYSTEM_SPACE, ACTIVE_PREFIX)
        except StoreError as exc:
            raise BackendUnavailableError(f"recall store unavailable: {exc}") from exc
        found = []
        for key in keys:
            parts = key.removeprefix(ACTIVE_PREFIX).split("/")
            if len(parts) == 2:
                found.append((parts[0], parts[1]))
        return found

    async def forget_unfinished(self, user_id: str, run_id: str) -> None:
        try:
            await self._store.delete(SYSTEM_SPACE, [validate_key(f"{ACTIVE_PREFIX}{user_id}/{run_id}")])
        except StoreError as exc:
            raise BackendUnavailableError(f"recall store unavailable: {exc}") from exc

    @staticmethod
    def _active_key(state: RunState) -> str:
        return validate_key(f"{ACTIVE_PREFIX}{state.user_id}/{state.run_id}")

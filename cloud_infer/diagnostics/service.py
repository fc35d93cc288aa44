"""``DiagnosticsService``: a consumer of the committed stream that keeps each session's recent metrics
and process events, and the reports of its thin client (``record_experience``), applies the rules
(``rules.py``), ranks the likely causes (``explain.py``) and groups what they find into incidents
(``incidents.py``).

Incidents are kept in the operator space of the store (``SYSTEM_SPACE``, ``ops/incidents/``), never in a
user's space, and name sessions by pseudonym only: an HMAC of the owner and session under the server's
key, so the same session keeps its pseudonym and nobody can compute it back. The recent metrics are in
memory (``max_sessions``, least recently reporting forgotten first): after a restart a rule that needs
"10 s" waits for 10 s of new samples.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import logging
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Sequence

from opentelemetry import metrics, trace
from opentelemetry.metrics import CallbackOptions, Observation

from cloud_infer.commands.service import SessionRef
from cloud_infer.diagnostics.config import DiagnosticsSettings
from cloud_infer.diagnostics.experience import ExperienceMetrics, ExperienceReport
from cloud_infer.diagnostics.explain import with_causes
from cloud_infer.diagnostics.incidents import Incident, IncidentBook, signature
from cloud_infer.diagnostics.rules import CLIENT_RULES, Finding, Rule, evaluate, experience
from cloud_infer.diagnostics.signals import (
    AppStarts,
    Consumer,
    ProcessEvent,
    Sample,
    Series,
)
from cloud_infer.errors import BackendUnavailableError, NotFoundError
from cloud_infer.stream.fanout import Fanout
from protos.shadowdesk.v1 import ingest_pb2 as pb
from recall_store.errors import ObjectNotFoundError, StoreUnavailableError
from recall_store.naming import SYSTEM_SPACE
from recall_store.store import ObjectStore

logger = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)
meter = metrics.get_meter(__name__)

CONSUMER_NAME = "diagnostics"
_PREFIX = "ops/incidents/"
# The sample metrics kept as incidents' evidence series.
_EVIDENCE_METRICS = (
    "cpu_percent",
    "memory_percent",
    "disk_used_percent",
    "probe_ms",
    "link_ms",
    "swap_pages_per_s",
)
_GAUGES = {
    "cpu_percent": "%",
    "memory_percent": "%",
    "disk_used_percent": "%",
    "probe_ms": "ms",
    "link_ms": "ms",
}


_KINDS = frozenset({"metrics", "app_fault", "app", "session_info"})


def _unique(consumers: tuple[Consumer, ...]) -> list[Consumer]:
    """Each process once (a process can be among both the top CPU and the top memory users)."""
    return list({c.pid: c for c in consumers}.values())


def pseudonym_key(token_secret: str) -> bytes:
    """The pseudonyms' key, derived from the server's token secret (a new secret, new pseudonyms)."""
    return hmac.new(token_secret.encode(), b"shadowdesk diagnostics pseudonyms", hashlib.sha256).digest()


def pseudonym(key: bytes, user_id: str, session_id: str) -> str:
    """A stable name for the session that says nothing of whose it is."""
    digest = hmac.new(key, f"{user_id}\x00{session_id}".encode(), hashlib.sha256).hexdigest()
    return f"s-{digest[:16]}"


class DiagnosticsService:
    def __init__(
        self,
        store: ObjectStore,
        settings: DiagnosticsSettings,
        pseudonym_key: bytes,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self._clock = clock  # the cloud's, for the thin clients' reports
        self._experience_metrics = ExperienceMetrics()
        self._store = store
        self._key = pseudonym_key
        self._series: OrderedDict[str, Series] = OrderedDict()
        self._book = IncidentBook(settings)
        self._unsaved: dict[str, Incident] = {}
        self._saving = asyncio.Lock()
        self._app_starts = AppStarts(settings.app_start_window_s)
        # Whose each pseudonym is (for remediation through the downlink), and what holds for it now.
        self._refs: dict[str, SessionRef] = {}
        self._subjects_of: dict[str, set[str]] = {}  # user -> their sessions' pseudonyms
        # Kept apart for the agent's rules and the client's: each side is judged on its own clock.
        self._holding: dict[str, frozenset[Rule]] = {}
        self._holding_faults: dict[str, frozenset[str]] = {}
        self._client_holding: dict[str, Finding] = {}
        # Exported through OpenTelemetry (and the Prometheus scrape): each session's newest sample, by
        # pseudonym, and the open incidents by rule.
        for metric, unit in _GAUGES.items():
            meter.create_observable_gauge(
                f"shadowdesk.session.{metric}", callbacks=[self._sessions_gauge(metric)], unit=unit
            )
        meter.create_observable_gauge("shadowdesk.incidents.open", callbacks=[self._open_incidents])

    def _sessions_gauge(self, metric: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(_: CallbackOptions) -> Iterable[Observation]:
            newest = [(subject, series.newest) for subject, series in list(self._series.items())]
            return [
                Observation(s.value(metric), {"session": subject}) for subject, s in newest if s is not None
            ]

        return observe

    def _open_incidents(self, _: CallbackOptions) -> Iterable[Observation]:
        # Every rule, so a count that falls to 0 is reported as 0, not as a series that stopped.
        counts = Counter(i.rule for i in self._book.all() if i.open)
        return [Observation(counts[rule], {"rule": rule.value}) for rule in Rule]

    def consume(self, stream: Fanout) -> None:
        """Read every committed batch (register before the stream starts)."""
        stream.register(CONSUMER_NAME, self.on_committed)

    async def load(self) -> None:
        """The incidents stored before a restart, so they are listed and their sessions' parts go on."""
        incidents = []
        try:
            for key in await self._store.list_keys(SYSTEM_SPACE, _PREFIX):
                try:
                    incidents.append(Incident.model_validate_json(await self._store.get(SYSTEM_SPACE, key)))
                except ObjectNotFoundError:
                    continue
        except StoreUnavailableError:
            # The server still starts on a store that is down: detection goes on, earlier incidents are
            # listed again after the next restart that can read them.
            logger.warning("earlier incidents could not be read; starting without them", exc_info=True)
        self._book = IncidentBook(self.settings, incidents)

    async def on_committed(self, user_id: str, session_id: str, events: Sequence[pb.Event]) -> None:
        relevant = [e for e in events if e.WhichOneof("kind") in _KINDS]
        if not relevant:
            return
        subject = self._subject(user_id, session_id)
        series = self._series_of(subject)
        with tracer.start_as_current_span("diagnostics.evaluate"):
            for event in relevant:
                self._changed(self._judge(subject, series, event))
            if series.experience:
                # A client that stopped reporting (its tab closed) is judged here, at the agent's pace.
                self._changed(self._judge_experience(subject, series))
        await self._save()

    async def record_experience(self, user_id: str, session_id: str, report: ExperienceReport) -> None:
        """Keep a thin client's report on its session, stamped with the cloud's clock, and apply the
        client rule (the caller checked that the session is the user's); BackendUnavailableError when a
        changed incident cannot be stored."""
        sample = report.sample(self._clock())
        self._experience_metrics.record(sample)
        subject = self._subject(user_id, session_id)
        series = self._series_of(subject)
        series.add_experience(sample)
        with tracer.start_as_current_span("diagnostics.evaluate_experience"):
            self._changed(self._judge_experience(subject, series, {"lag_ms": sample.lag_ms}))
        try:
            await self._save()
        except StoreUnavailableError as exc:
            # Kept in _unsaved: the next report or batch stores it; this client hears the store is down.
            raise BackendUnavailableError(f"the incident could not be stored: {exc}") from exc

    def _subject(self, user_id: str, session_id: str) -> str:
        subject = pseudonym(self._key, user_id, session_id)
        self._refs[subject] = SessionRef(user_id, session_id)
        self._subjects_of.setdefault(user_id, set()).add(subject)
        return subject

    def _changed(self, incidents: Iterable[Incident]) -> None:
        for incident in incidents:
            self._unsaved[incident.incident_id] = incident

    async def _save(self) -> None:
        # A failed put raises, and the stream delivers the batch again; its events are judged already,
        # so what changed waits in _unsaved for that retry (or the next batch). One writer at a time
        # (the stream's batches and the clients' reports): an incident's older copy never lands last.
        async with self._saving:
            changed = self._unsaved
            for incident_id, incident in list(changed.items()):
                await self._store.put(
                    SYSTEM_SPACE,
                    f"{_PREFIX}{incident_id}.json",
                    incident.model_dump_json().encode(),
                    "application/json",
                )
                changed.pop(incident_id, None)

    def _judge(self, subject: str, series: Series, event: pb.Event) -> list[Incident]:
        """Add one event to the session's series and apply the rules at its time."""
        kind = event.WhichOneof("kind")
        if kind == "session_info":
            info = event.session_info
            series.hostname, series.image = info.hostname, info.image
            return []
        new_events: list[ProcessEvent] = []
        values: dict[str, float] = {}
        top: tuple[Consumer, ...] = ()
        if kind == "metrics":
            sample = Sample.from_event(event, series.newest)
            if not series.add(sample):
                return []  # delivered again after a restart: judged already
            values = {metric: sample.value(metric) for metric in _EVIDENCE_METRICS}
            top = sample.top_memory + sample.top_cpu
        else:
            process_event = ProcessEvent.from_event(event)
            if process_event is None or not series.add_event(process_event):
                return []
            new_events.append(process_event)
            settings = self.settings
            slow = self._app_starts.judge(
                process_event,
                settings.app_start_min_samples,
                settings.app_start_z,
                settings.app_start_floor_ms,
            )
            if slow is not None:
                series.add_event(dataclasses.replace(slow, t=slow.t + 1e-6))  # after its start
                new_events.append(slow)
        findings = [with_causes(f, series) for f in evaluate(series, self.settings)]
        place = self._place(series)
        self._holding[subject] = frozenset(f.rule for f in findings)
        self._holding_faults[subject] = frozenset(signature(f, place) for f in findings)
        return self._book.observe(
            subject,
            series.now,
            findings,
            values,
            place=place,
            events=new_events,
            top=_unique(top),
        )

    def _judge_experience(
        self, subject: str, series: Series, values: dict[str, float] | None = None
    ) -> list[Incident]:
        """Apply the client rule at the cloud's time now; ``values``: a new report's figures, as evidence."""
        found = experience(series, self.settings, self._clock())
        findings = [with_causes(found, series)] if found is not None else []
        if found is None:
            self._client_holding.pop(subject, None)
        else:
            self._client_holding[subject] = found
        return self._book.observe(
            subject,
            self._clock(),
            findings,
            values or {},
            place=self._place(series),
            judged=CLIENT_RULES,
        )

    def _place(self, series: Series) -> str:
        """Where the session runs, for grouping desktop faults: its image, else its host's pseudonym."""
        if series.image:
            return series.image
        if series.hostname:
            digest = hmac.new(self._key, f"host\x00{series.hostname}".encode(), hashlib.sha256).hexdigest()
            return f"h-{digest[:12]}"
        return ""

    def incidents(self, *, open_only: bool = False, limit: int = 100) -> list[Incident]:
        """Newest first."""
        found = [i for i in self._book.all() if i.open or not open_only]
        return found[:limit]

    def incident(self, incident_id: str) -> Incident:
        found = self._book.get(incident_id)
        if found is None:
            raise NotFoundError(f"no incident {incident_id!r}")
        return found

    def sessions(self) -> list[tuple[str, Series]]:
        """Every session with recent metrics, by pseudonym, the most recently reporting last."""
        return list(self._series.items())

    def series(self, subject: str) -> Series | None:
        """A session's recent metrics, by pseudonym."""
        return self._series.get(subject)

    def subjects_of(self, user_id: str) -> frozenset[str]:
        """The pseudonyms of ``user_id``'s sessions with recent metrics (for the user's own notices)."""
        return frozenset(self._subjects_of.get(user_id, ()))

    def session_of(self, subject: str) -> SessionRef | None:
        """The session behind a pseudonym, once it reported metrics to this server; never shown to admins."""
        return self._refs.get(subject)

    def holds(self, subject: str, rule: Rule) -> bool:
        """Whether ``rule`` held at the session's newest sample (a client rule: at its newest report)."""
        client = self._client_holding.get(subject)
        return rule in self._holding.get(subject, frozenset()) or (client is not None and client.rule is rule)

    def holds_fault(self, subject: str, fault_signature: str) -> bool:
        """Whether the fault of ``fault_signature`` (an incident's ``signature``: for an app's fault, that
        app's, not another app's of the same rule) held at the session's newest sample or event."""
        client = self._client_holding.get(subject)
        if client is not None and signature(client, self._place(self._series[subject])) == fault_signature:
            return True
        return fault_signature in self._holding_faults.get(subject, frozenset())

    def _series_of(self, subject: str) -> Series:
        series = self._series.get(subject)
        if series is None:
            series = self._series[subject] = Series(self.settings.baseline_window_s)
            while len(self._series) > self.settings.max_sessions:
                forgotten, _ = self._series.popitem(last=False)
                ref = self._refs.pop(forgotten, None)
                if ref is not None:
                    mine = self._subjects_of.get(ref.user_id, set())
                    mine.discard(forgotten)
                    if not mine:
                        self._subjects_of.pop(ref.user_id, None)
                self._holding.pop(forgotten, None)
                self._holding_faults.pop(forgotten, None)
                self._client_holding.pop(forgotten, None)
        else:
            self._series.move_to_end(subject)
        return series

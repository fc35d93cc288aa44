"""``DiagnosticsService``: a consumer of the committed stream that keeps each session's recent metrics
and process events, applies the rules (``rules.py``), ranks the likely causes (``explain.py``) and
groups what they find into incidents (``incidents.py``).

Incidents are kept in the operator space of the store (``SYSTEM_SPACE``, ``ops/incidents/``), never in a
user's space, and name sessions by pseudonym only: an HMAC of the owner and session under the server's
key, so the same session keeps its pseudonym and nobody can compute it back. The recent metrics are in
memory (``max_sessions``, least recently reporting forgotten first): after a restart a rule that needs
"10 s" waits for 10 s of new samples.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import logging
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Sequence

from opentelemetry import metrics, trace
from opentelemetry.metrics import CallbackOptions, Observation

from cloud_infer.commands.service import SessionRef
from cloud_infer.diagnostics.config import DiagnosticsSettings
from cloud_infer.diagnostics.explain import with_causes
from cloud_infer.diagnostics.incidents import Incident, IncidentBook, signature
from cloud_infer.diagnostics.rules import Rule, evaluate
from cloud_infer.diagnostics.signals import AppStarts, Consumer, ProcessEvent, Sample, Series
from cloud_infer.errors import NotFoundError
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
    def __init__(self, store: ObjectStore, settings: DiagnosticsSettings, pseudonym_key: bytes) -> None:
        self.settings = settings
        self._store = store
        self._key = pseudonym_key
        self._series: OrderedDict[str, Series] = OrderedDict()
        self._book = IncidentBook(settings)
        self._unsaved: dict[str, Incident] = {}
        self._app_starts = AppStarts(settings.app_start_window_s)
        # Whose each pseudonym is (for remediation through the downlink), and what holds for it now.
        self._refs: dict[str, SessionRef] = {}
        self._subjects_of: dict[str, set[str]] = {}  # user -> their sessions' pseudonyms
        self._holding: dict[str, frozenset[Rule]] = {}
        self._holding_faults: dict[str, frozenset[str]] = {}
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
        subject = pseudonym(self._key, user_id, session_id)
        self._refs[subject] = SessionRef(user_id, session_id)
        self._subjects_of.setdefault(user_id, set()).add(subject)
        series = self._series_of(subject)
        changed = self._unsaved
        with tracer.start_as_current_span("diagnostics.evaluate"):
            for event in relevant:
                for incident in self._judge(subject, series, event):
                    changed[incident.incident_id] = incident
        # A failed put raises, and the stream delivers the batch again; its events are judged already,
        # so what changed waits in _unsaved for that retry (or the next batch).
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
        """Whether ``rule`` held at the session's newest sample."""
        return rule in self._holding.get(subject, frozenset())

    def holds_fault(self, subject: str, fault_signature: str) -> bool:
        """Whether the fault of ``fault_signature`` (an incident's ``signature``: for an app's fault, that
        app's, not another app's of the same rule) held at the session's newest sample or event."""
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
        else:
            self._series.move_to_end(subject)
        return series

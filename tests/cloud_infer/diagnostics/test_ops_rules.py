"""The app and desktop rules, their ranked causes, and grouping by fault signature across sessions."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from cloud_infer.diagnostics.config import DiagnosticsSettings
from cloud_infer.diagnostics.explain import explain, with_causes
from cloud_infer.diagnostics.incidents import IncidentBook, signature
from cloud_infer.diagnostics.rules import Finding, Rule, Severity, evaluate
from cloud_infer.diagnostics.service import DiagnosticsService, pseudonym_key
from cloud_infer.diagnostics.signals import AppStarts, Consumer, ProcessEvent, Sample, Series
from protos.shadowdesk.v1 import ingest_pb2 as pb
from recall_store.local import LocalObjectStore

SETTINGS = DiagnosticsSettings()
GIB = 2**30


def quiet(start: float = 1_000.0, seconds: int = 20, **fields: float) -> Series:
    found = Series(SETTINGS.baseline_window_s)
    for second in range(seconds):
        found.add(Sample(start + second, 10.0, 40.0, 40.0, 0.3, **fields))  # type: ignore[arg-type]
    return found


def crash(t: float, pid: int, app: str = "editor", version: str = "v1") -> ProcessEvent:
    return ProcessEvent(t, "crashed", app, pid, app, version, signal=signal.SIGSEGV)


def rules(found: Series) -> dict[Rule, Finding]:
    return {f.rule: f for f in evaluate(found, SETTINGS)}


def test_a_hang_holds_from_its_start_until_the_app_answers_or_ends() -> None:
    found = quiet()
    # The agent reports a hang after 5 s unanswered: it began 5 s before the event.
    found.add_event(ProcessEvent(1_010.0, "hung", "mousepad", 77, "mousepad", "b1", hung_ms=5000))
    (hang,) = [f for f in evaluate(found, SETTINGS) if f.rule is Rule.APP_HANG]
    assert (hang.app_id, hang.pid, hang.since, hang.value) == ("mousepad", 77, 1_005.0, 14.0)
    assert hang.severity is Severity.CRITICAL
    found.add_event(ProcessEvent(1_021.0, "recovered", "mousepad", 77, "mousepad", "b1", hung_ms=16000))
    assert Rule.APP_HANG not in rules(found)
    found.add_event(ProcessEvent(1_030.0, "hung", "mousepad", 77, "mousepad", "b1", hung_ms=5000))
    assert Rule.APP_HANG in rules(found)
    found.add_event(ProcessEvent(1_031.0, "exited", "mousepad", 77, "mousepad", "b1"))
    assert Rule.APP_HANG not in rules(found)


def test_three_crashes_of_one_app_within_two_minutes_are_a_crash_loop_not_crashes() -> None:
    found = quiet()
    found.add_event(crash(1_005, 10))
    assert rules(found)[Rule.APP_CRASH].value == 1
    found.add_event(crash(1_060, 11))
    assert Rule.CRASH_LOOP not in rules(found) and rules(found)[Rule.APP_CRASH].value == 2
    found.add_event(crash(1_120, 12))  # the third within 120 s of the first
    loop = rules(found)
    assert Rule.APP_CRASH not in loop
    assert (loop[Rule.CRASH_LOOP].value, loop[Rule.CRASH_LOOP].pid) == (3, 12)
    # Another app's single crash is its own finding; a crash a minute old has cleared.
    other = quiet()
    other.add_event(crash(1_005, 20, app="viewer"))
    other.add_event(crash(1_010, 21))
    other.add(Sample(1_066.0, 10.0, 40.0, 40.0, 0.3))
    assert {(f.rule, f.app_id) for f in evaluate(other, SETTINGS)} == {(Rule.APP_CRASH, "editor")}
    # Crashes spread wider than 120 s are no loop.
    spread = quiet()
    for index, t in enumerate((1_000, 1_070, 1_140, 1_210)):
        spread.add_event(crash(t, 30 + index))
    assert Rule.CRASH_LOOP not in rules(spread)


def test_an_oom_kill_names_its_victim_and_the_memory_holders() -> None:
    found = quiet()
    found.add(
        Sample(
            1_030.0,
            10.0,
            96.0,
            40.0,
            0.3,
            top_memory=(
                Consumer(123, "chromium", "chromium", 20.0, 94.0),
                Consumer(9, "xterm", "xterm", 0, 1),
            ),
        )
    )
    found.add_event(ProcessEvent(1_031.0, "oom_killed", "chromium", 140, "chromium", rss_bytes=3 * GIB))
    oom = with_causes(rules(found)[Rule.OOM_KILL], found)
    assert (oom.pid, oom.value) == (140, 3 * 1024)
    assert oom.causes == ("chromium (pid 123) holds 94 % of memory",)
    assert explain(oom).startswith("The kernel's OOM killer ended chromium (pid 140), holding 3072 MiB")


def test_memory_pressure_ranks_the_process_holding_the_most_memory_first() -> None:
    found = Series(SETTINGS.baseline_window_s)
    top = (
        Consumer(123, "chromium", "chromium", 30.0, 94.0),
        Consumer(456, "mousepad", "mousepad", 1.0, 2.0),
        Consumer(5, "Xvfb", "", 2.0, 1.0),
    )
    # The agent names its top processes every third sample: the newest that has them counts.
    for second in range(12):
        found.add(Sample(1_000.0 + second, 20.0, 97.0, 40.0, 0.3, top_memory=top if second % 3 == 0 else ()))
    (finding,) = [with_causes(f, found) for f in evaluate(found, SETTINGS)]
    assert finding.causes[0] == "chromium (pid 123) holds 94 % of memory"
    assert "Likely cause: chromium (pid 123) holds 94 % of memory." in explain(finding)
    assert "mousepad" not in explain(finding)  # 2 % is no cause


def test_a_slow_desktop_probe_is_unresponsive_after_ten_seconds_and_its_cause_is_ranked() -> None:
    found = quiet(probe_ms=8.0)
    hog = (Consumer(77, "stress", "", 190.0, 1.0),)
    for second in range(11):
        found.add(Sample(1_020.0 + second, 99.0, 50.0, 40.0, 4.0, probe_ms=900.0, top_cpu=hog))
    finding = with_causes(rules(found)[Rule.DESKTOP_UNRESPONSIVE], found)
    assert finding.held_s == 10 and finding.value == 900
    assert finding.causes[0] == "stress (pid 77) uses 190 % of a core"
    # Nine seconds slow is not yet a finding; without pressure the cause is the X server itself.
    short = quiet(probe_ms=8.0)
    for second in range(10):
        short.add(Sample(1_020.0 + second, 5.0, 50.0, 40.0, 0.2, probe_ms=900.0))
    assert Rule.DESKTOP_UNRESPONSIVE not in rules(short)
    short.add(Sample(1_030.0, 5.0, 50.0, 40.0, 0.2, probe_ms=900.0))
    calm = with_causes(rules(short)[Rule.DESKTOP_UNRESPONSIVE], short)
    assert calm.causes == ("the X server itself: the desktop shows no CPU, memory or swap pressure",)


def test_a_slow_link_and_swap_thrashing_hold_for_ten_seconds() -> None:
    found = quiet(link_ms=30.0)
    for second in range(11):
        found.add(Sample(1_020.0 + second, 10.0, 40.0, 40.0, 0.3, link_ms=2500.0, swap_pages_per_s=5000.0))
    held = rules(found)
    assert {Rule.LINK_DEGRADED, Rule.SWAP_THRASH} <= set(held)
    assert "2500 ms" in with_causes(held[Rule.LINK_DEGRADED], found).causes[0]


def test_a_full_disk_says_its_cause_is_unknown() -> None:
    found = Series(SETTINGS.baseline_window_s)
    found.add(Sample(1_000.0, 10.0, 40.0, 99.0, 0.3))
    (finding,) = [with_causes(f, found) for f in evaluate(found, SETTINGS)]
    assert finding.causes[0].startswith("unknown")
    found.add(Sample(361.0, 10.0, 40.0, 40.0, 0.3))
    assert Rule.APP_START_SLOW not in rules(found)


def test_swap_rate_comes_from_consecutive_samples_of_the_agent() -> None:
    def event(t: int, pages: int) -> pb.Event:
        metrics = pb.SystemMetrics(swap_in_pages=pages, swap_out_pages=pages, memory_total_bytes=GIB)
        metrics.top_memory.add(pid=3, name="chromium", app_id="chromium", rss_bytes=GIB // 2)
        return pb.Event(time_unix_nano=t * 1_000_000_000, metrics=metrics)

    first = Sample.from_event(event(100, 1000))
    second = Sample.from_event(event(102, 3000), first)
    assert second.swap_pages_per_s == 2000.0
    assert second.top_memory == (Consumer(3, "chromium", "chromium", 0.0, 50.0),)


def finding(rule: Rule, since: float, app: str = "", version: str = "") -> Finding:
    return Finding(rule, Severity.CRITICAL, since, 3, 3, 3, 10, app_id=app, app_version=version, pid=5)


def test_sessions_group_by_fault_signature_app_and_version_or_place() -> None:
    book = IncidentBook(SETTINGS)
    loop = finding(Rule.CRASH_LOOP, 100, "editor", "v1")
    (first,) = book.observe("s-a", 110, [loop], {}, place="img-1")
    # The same app and version crashing in a session on another image: the same incident.
    (joined,) = book.observe("s-b", 120, [finding(Rule.CRASH_LOOP, 115, "editor", "v1")], {}, place="img-2")
    assert joined.incident_id == first.incident_id and len(joined.sessions) == 2
    assert (joined.signature, joined.app_id, joined.app_version) == (
        "crash_loop|app=editor|version=v1",
        "editor",
        "v1",
    )
    # Another version, or another app: their own incidents.
    (other_version,) = book.observe("s-c", 121, [finding(Rule.CRASH_LOOP, 116, "editor", "v2")], {})
    (other_app,) = book.observe("s-d", 121, [finding(Rule.CRASH_LOOP, 116, "viewer", "v1")], {})
    assert len({first.incident_id, other_version.incident_id, other_app.incident_id}) == 3
    # Desktop faults group by place: one image's sessions together, another image apart.
    memory = finding(Rule.MEMORY_PRESSURE, 100)
    (image_a,) = book.observe("s-a", 130, [memory], {}, place="img-1")
    (image_a_too,) = book.observe("s-e", 131, [memory], {}, place="img-1")
    (image_b,) = book.observe("s-f", 131, [memory], {}, place="img-2")
    assert image_a.incident_id == image_a_too.incident_id != image_b.incident_id
    assert signature(memory, "img-1") == "memory_pressure|place=img-1"


def test_an_incident_keeps_its_apps_process_events_and_each_sessions_top_processes() -> None:
    book = IncidentBook(SETTINGS)
    events = [crash(100, 10), crash(101, 11, app="viewer")]
    top = [Consumer(10, "editor", "editor", 50.0, 12.5)]
    (incident,) = book.observe(
        "s-a", 101, [finding(Rule.APP_CRASH, 100, "editor", "v1")], {}, events=events, top=top
    )
    assert [(e.kind, e.pid, e.signal) for e in incident.events] == [("crashed", 10, signal.SIGSEGV)]
    assert [(p.name, p.memory_percent) for p in incident.top_processes] == [("editor", 12.5)]
    book.observe(
        "s-a",
        102,
        [finding(Rule.APP_CRASH, 100, "editor", "v1")],
        {},
        top=[Consumer(10, "editor", "editor", 5.0, 13.0)],
    )
    assert [p.cpu_percent for p in incident.top_processes] == [5.0]  # the newest, not accumulated


def start(t: float, ms: int, app: str = "editor", version: str = "v1") -> ProcessEvent:
    return ProcessEvent(t, "started", app, int(t), app, version, startup_ms=ms)


def test_an_apps_baseline_of_start_times_across_the_fleet_finds_a_slow_start() -> None:
    starts = AppStarts(SETTINGS.app_start_window_s)

    def judge(event: ProcessEvent) -> ProcessEvent | None:
        return starts.judge(event, 5, SETTINGS.app_start_z, SETTINGS.app_start_floor_ms)

    # Too little history: no judgement, however slow.
    assert [judge(start(100 + n, ms)) for n, ms in enumerate((900, 1100, 1000, 12_000))] == [None] * 4
    for n, ms in enumerate((950, 1050, 1000)):
        assert judge(start(200 + n, ms)) is None
    slow = judge(start(300, 15_000))
    assert slow is not None and (slow.kind, slow.startup_ms, slow.usual_ms) == ("slow_start", 15_000, 1000)
    assert judge(start(301, 1900)) is None  # under the 2 s floor
    assert judge(start(302, 15_000, version="v2")) is None  # another build has its own baseline
    # As a finding of the session it happened in, for a minute.
    found = quiet(start=290)
    found.add_event(slow)
    finding = with_causes(rules(found)[Rule.APP_START_SLOW], found)
    assert (finding.value, finding.threshold, finding.app_id) == (15.0, 1.0, "editor")
    assert explain(finding).startswith(
        "editor (pid 300) took 15.0 s to show its first window, against a usual 1.0 s"
    )
    assert finding.causes[0].startswith("unknown")
    found.add(Sample(361.0, 10.0, 40.0, 40.0, 0.3))
    assert Rule.APP_START_SLOW not in rules(found)


async def test_the_service_judges_starts_per_app_across_sessions_and_groups_desktop_faults_by_image(
    tmp_path: Path,
) -> None:
    store = LocalObjectStore(tmp_path / "store", workers=2)
    diagnostics = DiagnosticsService(store, SETTINGS, pseudonym_key("secret-for-this-test-0123456789"))
    now = time.time_ns()

    def app(t_s: int, ms: int) -> pb.Event:
        started = pb.AppLifecycle(
            kind=pb.AppLifecycle.KIND_STARTED, app_id="editor", pid=40 + t_s, startup_ms=ms, app_version="v1"
        )
        return pb.Event(time_unix_nano=now + t_s * 1_000_000_000, app=started)

    try:
        for index in range(5):
            await diagnostics.on_committed("u", f"desk-{index}", [app(index, 1000 + 10 * index)])
        await diagnostics.on_committed("u", "desk-slow", [app(9, 14_000)])
        (slow,) = diagnostics.incidents()
        assert (slow.rule, slow.app_id, slow.app_version) == (Rule.APP_START_SLOW, "editor", "v1")
        assert [e.kind for e in slow.events] == ["started", "slow_start"]

        def memory(t_s: int) -> pb.Event:
            sample = pb.SystemMetrics(memory_used_bytes=98, memory_total_bytes=100)
            return pb.Event(time_unix_nano=now + t_s * 1_000_000_000, metrics=sample)

        for session, image in (("desk-a", "img-1"), ("desk-b", "img-1"), ("desk-c", "img-2")):
            info = pb.Event(time_unix_nano=now, session_info=pb.SessionInfo(hostname="h", image=image))
            await diagnostics.on_committed("u", session, [info, *(memory(t) for t in range(12))])
        pressure = [i for i in diagnostics.incidents() if i.rule is Rule.MEMORY_PRESSURE]
        assert sorted(len(i.sessions) for i in pressure) == [1, 2]
        assert {i.signature for i in pressure} == {
            "memory_pressure|place=img-1",
            "memory_pressure|place=img-2",
        }
        subject = pressure[0].sessions[0].subject
        assert diagnostics.holds_fault(subject, pressure[0].signature)
        assert not diagnostics.holds_fault(subject, "memory_pressure|place=elsewhere")
    finally:
        await store.close()

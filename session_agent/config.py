"""Settings of the session agent, read from ``SHADOWDESK_AGENT_*`` environment variables.

Precedence: constructor argument, then environment, then the default below. Every variable is
``SHADOWDESK_AGENT_`` + the field name in upper case, e.g. ``SHADOWDESK_AGENT_TOKEN``. List settings
(``sensors``, ``exclude_apps``, ``exclude_title_patterns``, ``private_window_patterns``,
``allowed_actions``, ``launch_executables``) take a
comma-separated list (``window_focus,frames``) or a JSON list (needed for a regular expression with a
comma). See docs/agent.md.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Annotated, Any, Self

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from shadowdesk_common.patterns import check_patterns

ENV_PREFIX = "SHADOWDESK_AGENT_"
SENSOR_WINDOW_FOCUS = "window_focus"
SENSOR_APPS = "apps"
SENSOR_FRAMES = "frames"
SENSOR_SYSTEM_METRICS = "system_metrics"
SENSOR_ACCESSIBILITY = "accessibility"
SENSOR_SELECTION = "selection"
# Ops diagnostics: app hangs, the desktop probe and logon phases (X), and crashes and OOM kills.
SENSOR_DESKTOP_HEALTH = "desktop_health"
SENSOR_PROCESS_FAULTS = "process_faults"
KNOWN_SENSORS = frozenset(
    {
        SENSOR_WINDOW_FOCUS,
        SENSOR_APPS,
        SENSOR_FRAMES,
        SENSOR_SYSTEM_METRICS,
        SENSOR_ACCESSIBILITY,
        SENSOR_SELECTION,
        SENSOR_DESKTOP_HEALTH,
        SENSOR_PROCESS_FAULTS,
    }
)
X11_SENSORS = frozenset(
    {
        SENSOR_WINDOW_FOCUS,
        SENSOR_APPS,
        SENSOR_FRAMES,
        SENSOR_ACCESSIBILITY,
        SENSOR_SELECTION,
        SENSOR_DESKTOP_HEALTH,
    }
)
# Executor actions: the names of the WorkflowStep and Remediation oneof fields of ingest.proto.
ACTION_FOCUS_WINDOW = "focus_window"
ACTION_LAUNCH_APP = "launch_app"
ACTION_CLICK_ELEMENT = "click_element"
ACTION_TYPE_TEXT = "type_text"
ACTION_PRESS_KEYS = "press_keys"
ACTION_SET_CLIPBOARD = "set_clipboard"
ACTION_GET_CLIPBOARD = "get_clipboard"
ACTION_READ_ELEMENT = "read_element"
ACTION_WAIT_FOR = "wait_for"
ACTION_TAKE_FRAME = "take_frame"
ACTION_SELECT_OPTION = "select_option"
ACTION_FILE_EXISTS = "file_exists"
ACTION_FIND_TEXT = "find_text"
# RecordingControl (Command kind ``recording``): start or stop recording a demonstration.
ACTION_RECORDING = "recording"
ACTION_KILL_PROCESS = "kill_process"
ACTION_RESTART_PROCESS = "restart_process"
ACTION_FREE_TEMP_SPACE = "free_temp_space"
ACTION_DIAGNOSTIC_SNAPSHOT = "diagnostic_snapshot"
ACTION_LOG_OFF = "log_off"
# The actions of a WorkflowStep.
WORKFLOW_ACTIONS = frozenset(
    {
        ACTION_FOCUS_WINDOW,
        ACTION_LAUNCH_APP,
        ACTION_CLICK_ELEMENT,
        ACTION_TYPE_TEXT,
        ACTION_PRESS_KEYS,
        ACTION_SET_CLIPBOARD,
        ACTION_GET_CLIPBOARD,
        ACTION_READ_ELEMENT,
        ACTION_WAIT_FOR,
        ACTION_TAKE_FRAME,
        ACTION_SELECT_OPTION,
        ACTION_FILE_EXISTS,
        ACTION_FIND_TEXT,
    }
)
# What needs the X display: every workflow action but FileExists, and recording.
DISPLAY_ACTIONS = (WORKFLOW_ACTIONS - {ACTION_FILE_EXISTS}) | {ACTION_RECORDING}
REMEDIATION_ACTIONS = frozenset(
    {
        ACTION_KILL_PROCESS,
        ACTION_RESTART_PROCESS,
        ACTION_FREE_TEMP_SPACE,
        ACTION_DIAGNOSTIC_SNAPSHOT,
        ACTION_LOG_OFF,
    }
)
KNOWN_ACTIONS = WORKFLOW_ACTIONS | REMEDIATION_ACTIONS | {ACTION_RECORDING}
# Off by default: what ends processes or deletes files is turned on by whoever runs the desktop.
DEFAULT_ALLOWED_ACTIONS = WORKFLOW_ACTIONS | {ACTION_DIAGNOSTIC_SNAPSHOT, ACTION_RECORDING}
# The cloud refuses clipboard text longer than its max_text_chars (65536 by default).
MAX_SELECTION_CHARS = 65536
MAX_BATCH_BYTES = 2 * 1024 * 1024
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$")
# Password managers: app ids (WM_CLASS class or instance, lower-cased) never captured by default.
DEFAULT_EXCLUDED_APPS = ("keepassxc", "keepass2", "1password", "bitwarden", "enpass", "seahorse")
# Private-browsing window titles of Chromium/Chrome/Edge/Firefox, English and Chinese (simplified and
# traditional) UIs: e.g. "New Tab - Chromium (Incognito)", "Mozilla Firefox Private Browsing",
# "[InPrivate] - Microsoft Edge", "Google Chrome (无痕模式)", "Mozilla Firefox 隐私浏览".
DEFAULT_PRIVATE_WINDOW_PATTERNS = (
    r"\bincognito\b",
    r"\bprivate browsing\b",
    r"\binprivate\b",
    "无痕",
    "無痕",
    "隐身",
    "隱身",
    "隐私浏览",
    "隱私瀏覽",
    "私密浏览",
    "私密瀏覽",
)


def _default_version() -> str:
    try:
        return metadata.version("shadowdesk")
    except metadata.PackageNotFoundError:
        return "0.0.0+unknown"


class AgentSettings(BaseSettings):
    """Everything the agent needs to sense one desktop session and stream it to the cloud."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid")

    server: str = Field("127.0.0.1:50051", description="host:port of the cloud ingest gRPC server")
    token: SecretStr = Field(description="per-session bearer token, sent as `authorization` metadata")
    user_id: str = Field(description="user the session belongs to")
    session_id: str = Field(description="desktop session id; seq numbers are per session")
    display: str = Field(
        default_factory=lambda: os.environ.get("DISPLAY", ""), description="X display; defaults to $DISPLAY"
    )
    spool_path: Path = Field(
        Path.home() / ".local/state/shadowdesk/agent-spool.sqlite3",
        description="SQLite file of the durable spool (one session per file)",
    )
    spool_max_bytes: int = Field(
        256 * 1024 * 1024, ge=1024 * 1024, description="hard bound of unacknowledged event bytes"
    )
    frame_interval_s: float = Field(1.0, ge=0.05, description="seconds between screen grabs")
    frame_max_width: int = Field(1280, ge=64, description="frames wider than this are downscaled")
    frame_quality: int = Field(60, ge=1, le=100, description="WebP quality of sent frames")
    dhash_min_distance: int = Field(
        4, ge=0, le=64, description="skip frames whose dHash differs from the last sent one in fewer bits"
    )
    window_poll_s: float = Field(0.5, gt=0, description="longest wait between X event checks")
    metrics_interval_s: float = Field(1.0, ge=0.1, description="seconds between system metric samples")
    metrics_send_interval_s: float = Field(
        2.0,
        ge=0,
        description="system metric samples are handed to the spool together this often (each hand-over "
        "is a commit and a batch; 0: every sample at once)",
    )
    top_processes: int = Field(
        3, ge=0, le=10, description="processes named in each sample as top CPU and top memory users (0: none)"
    )
    top_interval_s: float = Field(
        3.0, ge=0, description="seconds between readings of the top processes (a pass over /proc)"
    )
    hang_after_s: float = Field(
        5.0, gt=0, description="a window that leaves a _NET_WM_PING unanswered this long is hung"
    )
    ping_interval_s: float = Field(1.0, gt=0, description="seconds between _NET_WM_PING checks of a window")
    probe_interval_s: float = Field(
        1.0, gt=0, description="seconds between desktop responsiveness probes (an X round trip)"
    )
    image: str = Field(
        "",
        max_length=255,
        description="the desktop image's name, reported to the cloud (fleet diagnostics groups host "
        "faults by it; empty: by host)",
    )
    accessibility_interval_s: float = Field(
        5.0, ge=0.5, description="seconds between accessibility-text walks of a window that stays focused"
    )
    selection_max_chars: int = Field(
        8000,
        ge=1,
        le=MAX_SELECTION_CHARS,
        description="selected or copied text is cut to this many characters",
    )
    selection_debounce_s: float = Field(
        0.4,
        ge=0,
        description="PRIMARY is read once it kept its owner this long and no button or Shift is held",
    )
    selection_timeout_s: float = Field(
        1.0, gt=0, description="deadline for the app owning a selection to hand over its text"
    )
    batch_max_events: int = Field(256, ge=1, description="most events in one EventBatch")
    batch_max_bytes: int = Field(
        1024 * 1024, ge=1024, le=MAX_BATCH_BYTES, description="most serialized event bytes in one batch"
    )
    max_inflight_batches: int = Field(4, ge=1, description="batches sent but not yet acknowledged")
    flush_interval_s: float = Field(0.5, gt=0, description="group-commit period of the spool")
    routine_send_interval_s: float = Field(
        10.0,
        ge=0,
        le=60,
        description="metrics samples with nothing near a limit wait up to this long to go out in one batch; "
        "other events and samples near a limit go at the next flush (0: every flush sends)",
    )
    ack_timeout_s: float = Field(15.0, gt=0, description="reconnect when the oldest unacked batch is older")
    connect_timeout_s: float = Field(10.0, gt=0, description="deadline for channel ready + Hello/Welcome")
    backoff_initial_s: float = Field(0.5, gt=0, description="first reconnect delay; doubles per failure")
    backoff_max_s: float = Field(30.0, gt=0, description="cap of the reconnect delay")
    rejected_backoff_s: float = Field(
        300.0, gt=0, description="delay after the cloud rejects the agent (bad token, permission, argument)"
    )
    tls_ca: Path | None = Field(None, description="PEM CA bundle; enables TLS")
    tls_cert: Path | None = Field(None, description="PEM client certificate for mutual TLS")
    tls_key: Path | None = Field(None, description="PEM client key for mutual TLS")
    sensors: Annotated[set[str], NoDecode] = Field(
        default_factory=lambda: set(KNOWN_SENSORS), description="sensors to run (subset of KNOWN_SENSORS)"
    )
    agent_version: str = Field(default_factory=_default_version, description="reported in Hello")
    exclude_apps: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_EXCLUDED_APPS),
        description="app ids (WM_CLASS, case-insensitive) whose windows are private",
    )
    exclude_title_patterns: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="case-insensitive regexes; a window whose title matches is private"
    )
    private_window_patterns: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_PRIVATE_WINDOW_PATTERNS),
        description="case-insensitive regexes of private-browsing window titles",
    )
    allowed_actions: Annotated[set[str], NoDecode] = Field(
        default_factory=lambda: set(DEFAULT_ALLOWED_ACTIONS),
        description="command actions the executor runs (subset of KNOWN_ACTIONS); any other is refused",
    )
    action_timeout_s: float = Field(30.0, gt=0, le=600, description="bound of one command's action")
    wait_max_s: float = Field(
        600.0, gt=0, le=3600, description="longest WaitFor, whatever its timeout_ms says"
    )
    command_queue_max: int = Field(64, ge=1, description="commands waiting to run; more are refused")
    launch_executables: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="executables LaunchApp may start (names on PATH); empty: any on PATH",
    )
    recording_max_s: float = Field(
        3600.0, gt=0, le=8 * 3600, description="a recording stops by itself after this long"
    )
    recording_wait_min_s: float = Field(
        1.5,
        gt=0,
        description="a pause without input this long, while the UI changed, is recorded as a WAIT",
    )
    logoff_command: str = Field(
        "",
        description="how this platform ends the desktop session, e.g. 'loginctl terminate-session "
        "self' (run without a shell); empty: LogOff closes the desktop's apps through X",
    )
    temp_dir: Path = Field(
        default_factory=lambda: Path(tempfile.gettempdir()),
        description="directory FreeTempSpace cleans (only the desktop user's old files)",
    )

    @field_validator("user_id", "session_id")
    @classmethod
    def _check_id(cls, value: str) -> str:
        if not _ID_RE.fullmatch(value):
            raise ValueError("must be 1-128 characters of [A-Za-z0-9._@-]")
        return value

    @field_validator("sensors", "allowed_actions", mode="before")
    @classmethod
    def _split_sensors(cls, value: Any) -> Any:
        return set(_split_list(value)) if isinstance(value, str) else value

    @field_validator(
        "exclude_apps",
        "exclude_title_patterns",
        "private_window_patterns",
        "launch_executables",
        mode="before",
    )
    @classmethod
    def _split_lists(cls, value: Any) -> Any:
        return _split_list(value) if isinstance(value, str) else value

    @field_validator("exclude_apps")
    @classmethod
    def _lower_apps(cls, value: list[str]) -> list[str]:
        return [app.strip().lower() for app in value if app.strip()]

    @field_validator("exclude_title_patterns", "private_window_patterns")
    @classmethod
    def _check_patterns(cls, value: list[str]) -> list[str]:
        return check_patterns(value)

    @field_validator("sensors")
    @classmethod
    def _check_sensors(cls, value: set[str]) -> set[str]:
        unknown = value - KNOWN_SENSORS
        if unknown:
            raise ValueError(f"unknown sensors {sorted(unknown)}; known: {sorted(KNOWN_SENSORS)}")
        return value

    @field_validator("allowed_actions")
    @classmethod
    def _check_actions(cls, value: set[str]) -> set[str]:
        unknown = value - KNOWN_ACTIONS
        if unknown:
            raise ValueError(f"unknown actions {sorted(unknown)}; known: {sorted(KNOWN_ACTIONS)}")
        return value

    @field_validator("logoff_command")
    @classmethod
    def _check_logoff_command(cls, value: str) -> str:
        try:
            shlex.split(value)
        except ValueError as exc:
            raise ValueError(f"logoff_command is not a valid command line: {exc}") from exc
        return value

    @field_validator("launch_executables")
    @classmethod
    def _check_executables(cls, value: list[str]) -> list[str]:
        names = [name.strip() for name in value if name.strip()]
        if any("/" in name for name in names):
            raise ValueError("launch_executables are names looked up on PATH, without '/'")
        return names

    @property
    def executable_actions(self) -> frozenset[str]:
        """The allowed actions this agent can run: desktop actions and recording need an X display."""
        allowed = frozenset(self.allowed_actions)
        return allowed if self.display else allowed - DISPLAY_ACTIONS

    @model_validator(mode="after")
    def _check_combinations(self) -> Self:
        if self.backoff_initial_s > self.backoff_max_s:
            raise ValueError("backoff_initial_s must not exceed backoff_max_s")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key must be given together")
        if self.tls_cert is not None and self.tls_ca is None:
            raise ValueError("mutual TLS (tls_cert/tls_key) needs tls_ca")
        if self.sensors & X11_SENSORS and not self.display:
            raise ValueError(f"sensors {sorted(self.sensors & X11_SENSORS)} need an X display (set DISPLAY)")
        return self


def _split_list(text: str) -> list[str]:
    """A JSON list, or else a comma-separated list without empty items."""
    text = text.strip()
    if text.startswith("["):
        items = json.loads(text)
        if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
            raise ValueError("must be a JSON list of strings")
        return items
    return [part.strip() for part in text.split(",") if part.strip()]

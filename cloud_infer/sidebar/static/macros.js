// The Macros tab: choose the desktop, record a demonstration (with a banner on every tab while the
// agent records), list the user's macros, and open one to edit (macro_editor.js) or run
// (macro_runs.js). Names, steps and documents are the user's or their screens' text: textContent only.

import { ApiError } from "/sidebar/static/api.js";
import { $, el, formatTime } from "/sidebar/static/dom.js";
import { setText, t } from "/sidebar/static/i18n.js";
import { MacroEditor } from "/sidebar/static/macro_editor.js";
import { MacroRuns } from "/sidebar/static/macro_runs.js";

// This tab's recording survives a reload, so its banner (and its Stop) come back with the page.
const RECORDING_KEY = "shadowdesk.recording";
const RECORDING_NAME_KEY = "shadowdesk.recording.name";
const DESKTOP_KEY = "shadowdesk.desktop";
const RECORDING_POLL_MS = 2_000;
const SESSION_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const SUBTABS = ["edit", "run", "history"];

function stored(key) {
  try {
    return sessionStorage.getItem(key) ?? "";
  } catch {
    return ""; // storage off
  }
}

function store(key, value) {
  try {
    if (value) sessionStorage.setItem(key, value);
    else sessionStorage.removeItem(key);
  } catch {
    // storage off: a reload forgets it
  }
}

function elapsed(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  const hours = Math.floor(s / 3600);
  const minutes = String(Math.floor((s % 3600) / 60)).padStart(hours ? 2 : 1, "0");
  const seconds = String(s % 60).padStart(2, "0");
  return hours ? `${hours}:${minutes}:${seconds}` : `${minutes}:${seconds}`;
}

export class MacrosPanel {
  #api;
  #ui; // {confirm, status, error, showTab}
  #manage;
  #editor;
  #runs;
  #shown = false;
  #desktopHint;
  #recording = null; // the RecordingView while recording
  #tick = 0;
  #poll = 0;
  #subtab = "edit";

  constructor(api, ui, desktopHint = "") {
    this.#api = api;
    this.#ui = ui;
    this.#manage = api.can("manage");
    const hint = desktopHint || stored(DESKTOP_KEY);
    this.#desktopHint = SESSION_ID.test(hint) ? hint : "";
    store(DESKTOP_KEY, this.#desktopHint); // a reload (no fragment any more) keeps it
    this.#editor = new MacroEditor(api, ui, {
      onSaved: (view) => this.#opened(view),
      onDeleted: () => this.closeMacro(true),
    });
    this.#runs = new MacroRuns(api, ui, () => $("macro-session").value);
    this.#runs.onOpenRun = (runId) => {
      this.#selectSubtab("run");
      this.#runs.open(runId);
    };
    this.#runs.onRunChanged = () => {
      if (this.#subtab === "history" && !$("macro-view").hidden) this.#runs.loadHistory();
    };
  }

  start() {
    this.#editor.start();
    this.#runs.start();
    $("macro-session").addEventListener("change", () => store(DESKTOP_KEY, $("macro-session").value));
    $("macro-sessions-refresh").addEventListener("click", () => this.loadSessions());
    $("record-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.startRecording();
    });
    $("record-stop").addEventListener("click", () => this.stopRecording());
    $("macro-back").addEventListener("click", () => this.closeMacro());
    for (const tab of SUBTABS) $(`mtab-${tab}`).addEventListener("click", () => this.#selectSubtab(tab));
    document.querySelector('#macro-view [role="tablist"]').addEventListener("keydown", (event) => {
      const current = SUBTABS.indexOf(this.#subtab);
      const moves = { ArrowRight: current + 1, ArrowLeft: current - 1, Home: 0, End: SUBTABS.length - 1 };
      if (!(event.key in moves)) return;
      event.preventDefault();
      event.stopPropagation();
      this.#selectSubtab(SUBTABS[(moves[event.key] + SUBTABS.length) % SUBTABS.length], true);
    });
    if (!this.#manage) {
      for (const id of ["record-start", "macro-save", "macro-delete", "run-start"]) {
        $(id).disabled = true;
        $(id).setAttribute("aria-describedby", "macros-read-only");
      }
      setText($("macros-read-only"), "macros.readOnly");
      $("macros-read-only").hidden = false;
    }
    this.#restoreRecording();
  }

  // The tab was shown: follow runs from now on, and bring desktops and macros up to date.
  show() {
    if (!this.#shown) {
      this.#shown = true;
      this.#runs.connect();
    }
    this.loadSessions();
    if ($("macro-view").hidden) this.loadMacros();
  }

  signOut() {
    this.#stopTimers();
    this.#runs.stop();
    $("macro-list").replaceChildren();
    $("macro-steps").replaceChildren();
    $("macro-document").value = "";
    $("run-steps").replaceChildren();
  }

  // --- desktops --------------------------------------------------------------------------------

  async loadSessions() {
    let sessions;
    try {
      ({ sessions } = await this.#api.sessions());
    } catch (error) {
      this.#ui.error(error);
      return;
    }
    const select = $("macro-session");
    const chosen = select.value || this.#desktopHint;
    const options = sessions.map(({ session_id: id, connected }) =>
      setText(el("option", { value: id }), connected ? "macros.connected" : "macros.offline", { id }),
    );
    // The desktop the sidebar was opened for, even before its agent first connects.
    if (chosen && !sessions.some((s) => s.session_id === chosen)) {
      options.unshift(setText(el("option", { value: chosen }), "macros.notSeen", { id: chosen }));
    }
    select.replaceChildren(...options);
    const connected = sessions.find((s) => s.connected)?.session_id;
    select.value = chosen || connected || sessions[0]?.session_id || "";
    $("macro-session-none").hidden = options.length > 0;
  }

  // --- recording -------------------------------------------------------------------------------

  async startRecording() {
    const sessionId = $("macro-session").value;
    if (!sessionId) {
      this.#ui.status(t("macros.chooseDesktop"), "error");
      return;
    }
    if (this.#recording) return;
    $("record-start").disabled = true;
    try {
      const recording = await this.#api.startRecording(sessionId);
      store(RECORDING_KEY, recording.recording_id);
      store(RECORDING_NAME_KEY, $("record-name").value.trim());
      this.#showRecording(recording);
      this.#ui.status(t("macros.recordingOn", { session: sessionId }));
    } catch (error) {
      $("record-start").disabled = !this.#manage;
      this.#ui.error(error);
    }
  }

  async #restoreRecording() {
    const recordingId = stored(RECORDING_KEY);
    if (!recordingId) return;
    try {
      const recording = await this.#api.recording(recordingId);
      if (recording.status === "recording") {
        $("record-name").value = stored(RECORDING_NAME_KEY);
        this.#showRecording(recording);
      } else {
        store(RECORDING_KEY, "");
      }
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) store(RECORDING_KEY, "");
    }
  }

  #showRecording(recording) {
    this.#recording = recording;
    const started = Date.parse(recording.created_at);
    const banner = $("recording-banner");
    banner.hidden = false;
    document.body.classList.add("is-recording");
    $("record-start").disabled = true;
    $("record-stop").disabled = !this.#manage;
    this.#showRecordingText(recording);
    const tick = () => ($("recording-elapsed").textContent = elapsed(Date.now() - started));
    tick();
    this.#stopTimers();
    this.#tick = setInterval(tick, 1000);
    this.#poll = setInterval(() => this.#pollRecording(), RECORDING_POLL_MS);
  }

  #showRecordingText(recording) {
    const actions = t("recording.actions", { n: recording.actions });
    setText($("recording-text"), "recording.on", { session: recording.session_id, actions });
  }

  async #pollRecording() {
    const current = this.#recording;
    if (!current) return;
    try {
      const recording = await this.#api.recording(current.recording_id);
      if (this.#recording !== current) return;
      if (recording.status === "failed") {
        this.#endRecording();
        this.#ui.status(t("recording.stopped", { error: recording.error || t("recording.noAgent") }), "error");
      } else if (recording.status === "recording") {
        this.#showRecordingText(recording);
      }
    } catch {
      // the next poll tries again; Stop still works
    }
  }

  async stopRecording() {
    const recording = this.#recording;
    if (!recording) return;
    $("record-stop").disabled = true;
    setText($("recording-text"), "recording.stopping");
    this.#stopTimers();
    try {
      const macro = await this.#api.stopRecording(recording.recording_id, $("record-name").value.trim());
      this.#endRecording();
      $("record-name").value = "";
      this.#ui.status(t("macros.saved", { name: macro.program.name }));
      this.#ui.showTab();
      this.#opened(macro);
      this.#selectSubtab("edit");
      this.loadMacros();
    } catch (error) {
      // A recording that failed or held nothing is over; otherwise (the server out of reach) it is
      // still recording, and Stop may be pressed again.
      if (error instanceof ApiError && error.status >= 400 && error.status < 500) this.#endRecording();
      else this.#showRecording(recording);
      this.#ui.error(error);
    }
  }

  #endRecording() {
    this.#stopTimers();
    this.#recording = null;
    store(RECORDING_KEY, "");
    store(RECORDING_NAME_KEY, "");
    $("recording-banner").hidden = true;
    document.body.classList.remove("is-recording");
    $("record-start").disabled = !this.#manage;
  }

  #stopTimers() {
    clearInterval(this.#tick);
    clearInterval(this.#poll);
  }

  // --- the list --------------------------------------------------------------------------------

  async loadMacros() {
    try {
      const macros = await this.#api.macros();
      $("macro-list").replaceChildren(...macros.map((macro) => this.#macroItem(macro)));
      $("macro-list-empty").hidden = macros.length > 0;
    } catch (error) {
      this.#ui.error(error);
    }
  }

  #macroItem(macro) {
    const open = el(
      "button",
      { type: "button", class: "result-open", "data-testid": "macro-open" },
      el(
        "span",
        { class: "result-text" },
        el("span", { class: "title", "data-testid": "macro-name" }, macro.name),
        el(
          "span",
          { class: "result-head" },
          setText(el("span", { class: "app" }), "macros.version", { n: macro.version }),
          el("time", { datetime: macro.updated_at }, formatTime(macro.updated_at)),
        ),
      ),
    );
    open.addEventListener("click", () => this.openMacro(macro.macro_id));
    return el("li", { class: "result", "data-testid": "macro-item", dataset: { macroId: macro.macro_id } }, open);
  }

  async openMacro(macroId) {
    try {
      this.#opened(await this.#api.macro(macroId));
      this.#selectSubtab("edit");
    } catch (error) {
      this.#ui.error(error);
    }
  }

  // Show ``view`` (a MacroView): just opened, saved as a new version, or made by a recording.
  #opened(view) {
    $("macro-list-view").hidden = true;
    $("macro-view").hidden = false;
    $("macro-title").textContent = view.program.name;
    const versions = view.versions.length;
    setText($("macro-meta"), "macros.meta", { version: view.version, n: versions });
    $("macro-meta").dataset.version = String(view.version);
    if (this.#editor.view !== view) this.#editor.show(view);
    this.#runs.show(view);
    if (this.#subtab === "history") this.#runs.loadHistory();
  }

  closeMacro(reload = false) {
    $("macro-view").hidden = true;
    $("macro-list-view").hidden = false;
    if (reload || this.#shown) this.loadMacros();
    $("record-name").focus();
  }

  #selectSubtab(name, focus = false) {
    this.#subtab = name;
    for (const tab of SUBTABS) {
      const selected = tab === name;
      const button = $(`mtab-${tab}`);
      button.setAttribute("aria-selected", String(selected));
      button.tabIndex = selected ? 0 : -1;
      $(`mpanel-${tab}`).hidden = !selected;
      if (selected && focus) button.focus();
    }
    if (name === "history") this.#runs.loadHistory();
  }
}

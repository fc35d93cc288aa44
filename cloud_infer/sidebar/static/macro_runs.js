// Runs of a macro: the parameter form, live progress step by step (with the frames the trace keeps),
// the questions a run asks (confirm a sensitive step; retry, skip, take over or abort after a halt),
// and the macro's run history. Progress comes over /v1/workflows/live; a run is read whole
// (GET /v1/workflows/runs/{id}) when it is opened, when the socket reconnects and when it ends.
//
// Secret parameters are password inputs whose values go into the start request only: the inputs are
// emptied before it is sent, and nothing else in the page keeps them.

import { $, el, formatTime } from "/sidebar/static/dom.js";
import { setText, t } from "/sidebar/static/i18n.js";
import { describeStep, thumbPath } from "/sidebar/static/macro_editor.js";

const FINAL = new Set(["complete", "failed", "aborted", "cancelled"]);
// The words of these come from i18n.js (status.*, step.*, answer.*); others are shown as they are.
const RUN_STATUS = new Set(["running", "waiting", "complete", "failed", "aborted", "cancelled"]);
const STEP_STATUS = new Set(["pending", "running", "waiting", "ok", "failed", "skipped", "taken_over", "refused_by_user"]);
const ANSWERS = new Set(["confirm", "reject", "retry", "skip", "take_over", "abort"]);
const ANSWER_HINTS = new Set(["take_over", "skip"]);
const runStatus = (status) => (RUN_STATUS.has(status) ? t(`status.${status}`) : status);
const NS_PER_MS = 1_000_000;

const isLoop = (entry) => "row_pattern" in entry;
const nsTime = (ns) => new Date(Number(ns) / NS_PER_MS).toISOString();

export class MacroRuns {
  #api;
  #ui; // {confirm, status, error}
  #session; // () => the desktop chosen
  #macro = null; // the MacroView whose runs these are
  #run = null; // {summary, traces: Map<"step|row", StepTrace>}
  #questionShown = "";
  #socket = null;

  constructor(api, ui, session) {
    this.#api = api;
    this.#ui = ui;
    this.#session = session;
  }

  start() {
    $("run-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.startRun();
    });
    $("run-cancel").addEventListener("click", () => this.cancel());
  }

  // Follow runs from now on (the socket opens once, when the Macros tab is first shown).
  connect() {
    this.#socket ??= this.#api.workflowsLive({
      onMessage: (message) => this.#onLive(message),
      onState: (state) => {
        if (state === "open" && this.#run && !FINAL.has(this.#run.summary.status)) this.open(this.#run.summary.run_id);
      },
    });
  }

  // A macro was opened (or saved): its run form, and no run shown until one starts or is picked.
  show(macro) {
    const same = this.#macro?.macro_id === macro.macro_id;
    this.#macro = macro;
    this.#renderForm(macro.program.parameters ?? []);
    if (!same) {
      this.#run = null;
      $("run-view").hidden = true;
    }
  }

  // --- the parameter form ----------------------------------------------------------------------

  #renderForm(parameters) {
    const fields = parameters.map((param) => {
      const id = `run-param-${param.name}`;
      let control;
      if (param.type === "choice") {
        control = el("select", {}, ...(param.choices ?? []).map((choice) => el("option", { value: choice }, choice)));
        if (param.default) control.value = param.default;
      } else {
        const type = param.type === "secret" ? "password" : "text";
        control = el("input", {
          type,
          autocomplete: param.type === "secret" ? "new-password" : "off",
          inputmode: param.type === "money" || param.type === "number" ? "decimal" : undefined,
          placeholder: param.type === "date" ? t("run.datePlaceholder") : undefined,
          maxlength: 4096,
        });
        if (param.type !== "secret") control.value = param.default ?? "";
      }
      Object.assign(control, { id, name: param.name, required: param.required !== false });
      control.dataset.testid = "run-param";
      control.dataset.secret = String(param.type === "secret");
      const type = param.type && param.type !== "text" ? ` (${param.type === "secret" ? t("run.secretType") : param.type})` : "";
      return el("div", { class: "field" }, el("label", { for: id }, `${param.label || param.name}${type}`), control);
    });
    $("run-params").replaceChildren(...fields);
  }

  async startRun() {
    const macro = this.#macro;
    const sessionId = this.#session();
    if (!macro) return;
    if (!sessionId) {
      this.#ui.status(t("run.chooseDesktop"), "error");
      return;
    }
    const parameters = {};
    const secrets = {};
    for (const control of $("run-params").querySelectorAll("[data-testid=run-param]")) {
      if (control.dataset.secret === "true") {
        if (control.value) secrets[control.name] = control.value;
        control.value = ""; // the request holds it now; the page does not
      } else if (control.value !== "") {
        parameters[control.name] = control.value;
      }
    }
    const button = $("run-start");
    button.disabled = true;
    try {
      const summary = await this.#api.startRun({ macroId: macro.macro_id, sessionId, parameters, secrets });
      this.#run = { summary, traces: new Map() };
      this.#questionShown = "";
      this.#render();
      this.#ui.status(t("run.started", { name: summary.name, session: sessionId }));
      $("run-status").focus();
    } catch (error) {
      this.#ui.error(error);
    } finally {
      button.disabled = !this.#api.can("manage");
    }
  }

  // --- one run ---------------------------------------------------------------------------------

  // Show run ``runId`` whole, from the server.
  async open(runId) {
    try {
      const view = await this.#api.run(runId);
      if (this.#run?.summary.run_id !== runId) this.#questionShown = "";
      const traces = new Map();
      for (const trace of view.steps) traces.set(traceKey(trace.step_id, trace.row), trace);
      this.#run = { summary: view, traces };
      this.#render();
    } catch (error) {
      this.#ui.error(error);
    }
  }

  async cancel() {
    const run = this.#run;
    if (!run || FINAL.has(run.summary.status)) return;
    const ok = await this.#ui.confirm(t("run.cancelConfirm", { name: run.summary.name }), t("run.cancel"));
    if (!ok) return;
    try {
      this.#update(await this.#api.cancelRun(run.summary.run_id));
    } catch (error) {
      this.#ui.error(error);
    }
  }

  async #answer(decision, question) {
    const run = this.#run;
    if (!run) return;
    for (const button of $("run-answers").querySelectorAll("button")) button.disabled = true;
    try {
      this.#update(await this.#api.answerRun(run.summary.run_id, decision, question.question_id));
    } catch (error) {
      this.#ui.error(error);
      this.#questionShown = ""; // offer the answers again
      this.#render();
    }
  }

  #onLive(message) {
    const run = this.#run;
    if (message.type === "run" && message.run) {
      if (run?.summary.run_id === message.run.run_id) this.#update(message.run);
      this.onRunChanged?.(message.run);
    } else if (message.type === "step" && run && message.run_id === run.summary.run_id && message.step) {
      run.traces.set(traceKey(message.step.step_id, message.step.row), message.step);
      this.#render();
    }
  }

  #update(summary) {
    const run = this.#run;
    if (!run || run.summary.run_id !== summary.run_id) return;
    const ended = !FINAL.has(run.summary.status) && FINAL.has(summary.status);
    run.summary = { ...run.summary, ...summary };
    this.#render();
    if (ended) this.open(summary.run_id); // every trace, whatever the socket missed
  }

  #render() {
    const run = this.#run;
    $("run-view").hidden = !run;
    if (!run) return;
    const { summary } = run;
    const final = FINAL.has(summary.status);
    setText($("run-heading"), "run.headingOf", { name: summary.name, time: formatTime(nsTime(summary.created_ns)) });
    const status = $("run-status");
    const detail = summary.error ? `: ${summary.error}` : "";
    const skipped = summary.skipped?.length ? t("run.skipped", { steps: summary.skipped.join(", ") }) : "";
    status.textContent = `${runStatus(summary.status)}${detail}${skipped}`;
    status.dataset.status = summary.status;
    $("run-cancel").hidden = final;
    $("run-cancel").disabled = !this.#api.can("manage");
    this.#renderQuestion(summary);
    $("run-steps").replaceChildren(...this.#stepItems(run));
  }

  #renderQuestion(summary) {
    const question = summary.status === "waiting" ? summary.question : null;
    const box = $("run-question");
    if (!question) {
      box.hidden = true;
      this.#questionShown = "";
      return;
    }
    if (this.#questionShown === question.question_id) return; // keep focus where the user has it
    this.#questionShown = question.question_id;
    const step = this.#stepName(question.step_id);
    const row = question.row === null || question.row === undefined ? "" : t("run.row", { n: question.row + 1 });
    const words = { step, row, reason: question.reason };
    setText($("run-question-text"), question.kind === "confirm" ? "run.confirmQuestion" : "run.haltQuestion", words);
    box.dataset.kind = question.kind;
    const buttons = question.options.map((option) => {
      const button = el(
        "button",
        {
          type: "button",
          class: option === "abort" || option === "reject" ? "danger" : undefined,
          "data-testid": `run-answer-${option}`,
          title: ANSWER_HINTS.has(option) ? t(`answerHint.${option}`) : undefined,
          disabled: !this.#api.can("manage"),
        },
        ANSWERS.has(option) ? t(`answer.${option}`) : option,
      );
      button.addEventListener("click", () => this.#answer(option, question));
      return button;
    });
    $("run-answers").replaceChildren(...buttons);
    box.hidden = false;
    buttons[0]?.focus();
  }

  #stepName(stepId) {
    if (stepId === "final_checks") return t("run.finalChecks");
    for (const entry of this.#macro?.program.steps ?? []) {
      for (const step of isLoop(entry) ? [entry, ...entry.steps] : [entry]) {
        if (step.id === stepId) return step.name || step.id;
      }
    }
    return stepId;
  }

  // One item per step (per row inside a loop), in program order, then traces of steps this version
  // of the macro no longer has.
  #stepItems({ summary, traces }) {
    const program = this.#macro?.program ?? { steps: [] };
    const items = [];
    const shown = new Set();
    const add = (step, row, currentRow = null) => {
      const key = traceKey(step.id, row);
      shown.add(key);
      items.push(this.#stepItem(step, row, traces.get(key), summary, currentRow));
    };
    for (const entry of program.steps) {
      if (!isLoop(entry)) {
        add(entry, null);
        continue;
      }
      const body = new Set(entry.steps.map((step) => step.id));
      const rows = [...new Set([...traces.values()].filter((t) => body.has(t.step_id)).map((t) => t.row ?? 0))];
      rows.sort((a, b) => a - b);
      const last = rows.at(-1);
      const atBody = body.has(summary.step_id) && !FINAL.has(summary.status);
      // The run is on a row the traces have not reached yet.
      if (atBody && (rows.length === 0 || traces.has(traceKey(summary.step_id, last)))) {
        rows.push(rows.length ? last + 1 : 0);
      }
      items.push(el("li", { class: "loop-head", "data-testid": "run-loop" }, entry.name || t("step.loopHead", { over: entry.over })));
      const current = summary.question?.row ?? rows.at(-1) ?? null;
      for (const row of rows.length ? rows : [null]) for (const step of entry.steps) add(step, row, current);
    }
    if ((program.final_checks ?? []).length) add({ id: "final_checks", name: t("run.finalChecks") }, null);
    for (const [key, trace] of traces) {
      if (!shown.has(key)) items.push(this.#stepItem({ id: trace.step_id, name: trace.name, action: trace.action }, trace.row, trace, summary));
    }
    return items;
  }

  #stepItem(step, row, trace, summary, currentRow = null) {
    const final = FINAL.has(summary.status);
    const here = !final && summary.step_id === step.id && row === currentRow;
    let status = trace ? trace.outcome : "pending";
    if (here) status = summary.status === "waiting" ? "waiting" : "running";
    const name = `${step.name || step.id}${row === null || row === undefined ? "" : t("run.stepRow", { n: row + 1 })}`;
    const details = [];
    if (trace) {
      const timing = [
        trace.found_by ? t("run.foundBy", { how: trace.found_by }) : "",
        t("run.try", { n: trace.attempt + 1 }),
        `${Math.round(trace.wait_ms + trace.act_ms + trace.check_ms)} ms`,
      ].filter(Boolean);
      details.push(el("p", { class: "muted", "data-testid": "run-step-timing" }, timing.join(" · ")));
      for (const check of trace.checks ?? []) {
        const seen = check.held
          ? ""
          : t("run.checkSeen", { expected: check.expected || "—", actual: check.actual || t("run.nothing") });
        details.push(
          el(
            "p",
            { class: check.held ? "check ok" : "check bad", "data-testid": "run-step-check" },
            t("run.check", { mark: check.held ? "✓" : "✗", kind: check.kind.replaceAll("_", " "), via: check.via, seen }),
          ),
        );
      }
      if (trace.error) details.push(el("p", { class: "check bad", "data-testid": "run-step-error" }, trace.error));
    }
    const frames = el("div", { class: "frames" });
    for (const [which, ref] of [["before", trace?.frame_before], ["after", trace?.frame_after]]) {
      const source = thumbPath(ref?.key);
      if (!source) continue;
      const alt = t(which === "before" ? "run.frameBefore" : "run.frameAfter", { name });
      const img = el("img", { class: "thumb", alt, "data-testid": `run-frame-${which}`, width: 96, height: 60 });
      this.#api.frame(source).then(
        (url) => (img.src = url),
        () => img.classList.add("thumb-none"),
      );
      frames.append(img);
    }
    return el(
      "li",
      { class: "run-step", "data-testid": "run-step", dataset: { stepId: step.id, status } },
      el(
        "div",
        { class: "result-head" },
        el("span", { class: "title", "data-testid": "run-step-name" }, name),
        el("span", { class: `badge step-${status}`, "data-testid": "run-step-status" }, STEP_STATUS.has(status) ? t(`step.${status}`) : status),
      ),
      step.action && step.id !== "final_checks" && (step.target || step.window) ? el("p", { class: "muted" }, describeStep(step)) : null,
      ...details,
      frames.childElementCount ? frames : null,
    );
  }

  // --- history ---------------------------------------------------------------------------------

  async loadHistory() {
    const macro = this.#macro;
    if (!macro) return;
    try {
      const { runs } = await this.#api.runs(macro.macro_id);
      if (this.#macro !== macro) return;
      $("run-history").replaceChildren(...runs.map((summary) => this.#historyItem(summary)));
      $("run-history-empty").hidden = runs.length > 0;
    } catch (error) {
      this.#ui.error(error);
    }
  }

  #historyItem(summary) {
    const open = el(
      "button",
      { type: "button", class: "result-open", "data-testid": "run-history-open" },
      el(
        "span",
        { class: "result-text" },
        el(
          "span",
          { class: "result-head" },
          el("span", { class: "app" }, summary.session_id),
          el("time", { datetime: nsTime(summary.created_ns) }, formatTime(nsTime(summary.created_ns))),
        ),
        el("span", { class: "title", "data-testid": "run-history-status" }, runStatus(summary.status)),
        summary.error ? el("span", { class: "snippet" }, summary.error) : null,
      ),
    );
    open.addEventListener("click", () => this.onOpenRun?.(summary.run_id));
    return el("li", { class: "result", "data-testid": "run-history-item", dataset: { runId: summary.run_id, status: summary.status } }, open);
  }

  stop() {
    this.#socket?.close();
  }
}

function traceKey(stepId, row) {
  return `${stepId}|${row ?? ""}`;
}

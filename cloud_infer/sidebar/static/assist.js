// The Assist tab: summarise, translate, polish, explain or ask about what is on the user's screen,
// streamed over /v1/assist/live. The window's title and text are untrusted: textContent and values only.

import { $ } from "/sidebar/static/dom.js";
import { setText, t } from "/sidebar/static/i18n.js";

export class AssistPanel {
  #api;
  #socket = null;
  #context = null;
  #prefill = ""; // the selection last put in the textarea; anything else there is the user's own text
  #runId = "";
  #runs = 0;
  #output = "";

  constructor(api) {
    this.#api = api;
  }

  start() {
    for (const button of document.querySelectorAll("#panel-assist .assist-action[type=button]")) {
      button.addEventListener("click", () => this.run(button.dataset.action));
    }
    $("assist-ask-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.run("ask");
    });
    $("assist-cancel").addEventListener("click", () => this.cancel());
    $("assist-text").addEventListener("input", () => this.#showHint());
  }

  // The tab was shown: connect the first time, afterwards ask for the current context.
  show() {
    if (this.#socket === null) {
      this.#socket = this.#api.assist({
        onMessage: (message) => this.#onMessage(message),
        onState: (state) => this.#onState(state),
      });
    } else {
      this.#socket.send({ type: "context" });
    }
  }

  run(action) {
    if (this.#runId) return;
    const question = $("assist-question").value.trim();
    if (action === "ask" && !question) {
      $("assist-question").focus();
      return;
    }
    // What the textarea shows is what is worked on; empty leaves the choice to the server (the window's text).
    const text = $("assist-text").value;
    const id = `assist-${Date.now()}-${++this.#runs}`;
    const message = { type: "run", id, action };
    if (text.trim()) message.text = text;
    if (action === "ask") message.question = question;
    if (!this.#socket?.send(message)) {
      this.#showError(t("net.notConnected"));
      return;
    }
    this.#runId = id;
    this.#output = "";
    this.#showError("");
    $("assist-output").textContent = "";
    this.#setRunning(true);
  }

  cancel() {
    if (!this.#runId) return;
    this.#socket?.send({ type: "cancel", id: this.#runId });
    this.#endRun();
  }

  #onState(state) {
    // A run's deltas do not survive the connection: the server cancels it when the socket closes.
    if (state === "closed" && this.#runId) {
      this.#endRun();
      this.#showError(t("assist.lost"));
    }
  }

  #onMessage(message) {
    if (message.type === "context") {
      this.#showContext(message.context ?? null);
      return;
    }
    if (message.id !== this.#runId || !this.#runId) return; // a run stopped meanwhile, or not ours
    if (message.type === "delta") {
      this.#output += String(message.text ?? "");
      $("assist-output").textContent = this.#output;
    } else if (message.type === "done") {
      this.#endRun();
    } else if (message.type === "error") {
      this.#endRun();
      this.#showError(errorText(message));
    }
  }

  #showContext(context) {
    this.#context = context?.available ? context : null;
    const current = this.#context;
    if (current?.title || current?.app_id) {
      delete $("assist-title").dataset.i18n; // the window's own title: not ours to translate
      $("assist-title").textContent = current.title || current.app_id;
    } else {
      setText($("assist-title"), current ? "assist.untitled" : "assist.noWindow");
    }
    $("assist-meta").textContent = current ? [current.app_id, current.url].filter(Boolean).join(" · ") : "";
    // The textarea follows the selection until the user writes their own text in it.
    const textarea = $("assist-text");
    if (textarea.value === this.#prefill) {
      this.#prefill = current?.selection ?? "";
      textarea.value = this.#prefill;
    }
    this.#showHint();
  }

  #showHint() {
    const hint = $("assist-hint");
    hint.hidden = $("assist-text").value.trim() !== "";
    setText(hint, this.#context ? "assist.hintWindow" : "assist.hintNothing");
  }

  #showError(message) {
    $("assist-error").textContent = message;
    $("assist-error").hidden = !message;
  }

  #endRun() {
    this.#runId = "";
    this.#setRunning(false);
  }

  #setRunning(running) {
    $("assist-output").setAttribute("aria-busy", String(running));
    $("assist-cancel").hidden = !running;
    for (const button of document.querySelectorAll("#panel-assist .assist-action")) button.disabled = running;
  }
}

function errorText(message) {
  const retry = Number(message.retry_after_s);
  if (message.code === "rate_limited" && Number.isFinite(retry)) {
    return t("assist.rateLimited", { s: Math.max(1, Math.ceil(retry)) });
  }
  return String(message.message || t("assist.failed"));
}

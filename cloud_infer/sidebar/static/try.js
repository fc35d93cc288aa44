// "Try this": first queries that find something in the user's own history (GET /v1/recall/suggestions:
// words of their recent moments, one per language where the history has both, a cross-lingual one, an
// id seen on screen, a question), each checked by the server to have hits. It opens by itself while the
// history is new, until the user hides it; the toggle beside the results' heading opens it again. A
// suggestion's text is the user's data: it is shown as it is, in its own language (lang attribute).

import { $, el } from "/sidebar/static/dom.js";
import { setText } from "/sidebar/static/i18n.js";

const HIDDEN_KEY = "shadowdesk.try.hidden";
const STALE_MS = 30_000; // an opened panel older than this asks the server again

function hiddenByUser() {
  try {
    return localStorage.getItem(HIDDEN_KEY) === "1";
  } catch {
    return false;
  }
}

function rememberHidden(hidden) {
  try {
    if (hidden) localStorage.setItem(HIDDEN_KEY, "1");
    else localStorage.removeItem(HIDDEN_KEY);
  } catch {
    // storage off: the panel opens again on the next load
  }
}

export class TryPanel {
  #api;
  #run; // {search(text), ask(text)}
  #loadedAt = 0;
  #loading = null;

  constructor(api, run) {
    this.#api = api;
    this.#run = run;
  }

  start() {
    $("try-toggle").addEventListener("click", () => (this.open ? this.hide(true) : this.show(true)));
    $("try-close").addEventListener("click", () => {
      this.hide(true);
      $("try-toggle").focus();
    });
    this.load();
  }

  get open() {
    return !$("try-panel").hidden;
  }

  // Fetch the suggestions; opens the panel for a new history unless the user hid it before.
  async load() {
    this.#loading ??= (async () => {
      try {
        const found = await this.#api.suggestions();
        this.#loadedAt = Date.now();
        this.#render(found.suggestions);
        if (found.history_new && !hiddenByUser()) this.show(false);
      } catch {
        // Recall off or rate-limited: nothing to suggest now; the toggle tries again.
      } finally {
        this.#loading = null;
      }
    })();
    return this.#loading;
  }

  async show(byUser) {
    $("try-panel").hidden = false;
    $("try-toggle").setAttribute("aria-expanded", "true");
    if (byUser) {
      rememberHidden(false);
      if (Date.now() - this.#loadedAt > STALE_MS) await this.load();
      $("try-list").querySelector("button")?.focus();
    }
  }

  hide(byUser) {
    $("try-panel").hidden = true;
    $("try-toggle").setAttribute("aria-expanded", "false");
    if (byUser) rememberHidden(true);
  }

  // The history changed (erased): what was suggested may find nothing now.
  refresh() {
    this.#loadedAt = 0;
    if (this.open) this.load();
  }

  #render(suggestions) {
    $("try-list").replaceChildren(...suggestions.map((s) => this.#item(s)));
    $("try-none").hidden = suggestions.length > 0;
    $("try-intro").hidden = suggestions.length === 0;
  }

  #item(suggestion) {
    const kind = suggestion.kind === "ask" ? "ask" : "search";
    const meta = el("span", { class: "try-meta" });
    meta.append(
      setText(el("span"), `try.${kind}`),
      " · ",
      setText(el("span"), "try.hits", { n: suggestion.hits }),
    );
    const button = el(
      "button",
      { type: "button", class: "try-open", "data-testid": "try-suggestion", dataset: { kind } },
      el("span", { class: "try-text", lang: suggestion.lang === "zh" ? "zh-CN" : "en" }, suggestion.text),
      meta,
    );
    button.addEventListener("click", () => this.#run[kind](suggestion.text));
    return el("li", { dataset: { reason: suggestion.reason } }, button);
  }
}

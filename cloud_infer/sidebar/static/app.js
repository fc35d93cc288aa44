// The Recall sidebar. Everything the API returns (screen text above all) is untrusted: it only ever
// reaches the page as textContent or attribute values of nodes built here, never as markup.

import { Api, ApiError, Session } from "/sidebar/static/api.js";
import { AssistPanel } from "/sidebar/static/assist.js";
import { $, el, formatTime } from "/sidebar/static/dom.js";
import { HealthNotices } from "/sidebar/static/health.js";
import { dateFormat, onLangChange, setText, startI18n, t } from "/sidebar/static/i18n.js";
import { MacrosPanel } from "/sidebar/static/macros.js";
import { TryPanel } from "/sidebar/static/try.js";

const SEARCH_DEBOUNCE_MS = 350;
const LIVE_REFRESH_MS = 1_000;
const SEARCH_LIMIT = 30;
const STATUS_CLEAR_MS = 8_000;
const TIME_ZONE = Intl.DateTimeFormat().resolvedOptions().timeZone;

const timeFormat = () => dateFormat({ hour: "2-digit", minute: "2-digit" });
const dateTimeFormat = () => dateFormat({ dateStyle: "medium", timeStyle: "short" });

// datetime-local values are wall-clock times in the browser's zone; the API wants instants.
function toInstant(localValue) {
  return localValue ? new Date(localValue).toISOString() : "";
}

function toLocalInput(date) {
  const pad = (n) => String(n).padStart(2, "0");
  return (
    `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}` +
    `T${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`
  );
}

// --- status line -------------------------------------------------------------------------------

let statusTimer = 0;
let signedOut = false; // then the signed-out message stays, whatever fails afterwards

function showStatus(message, kind = "info") {
  if (signedOut) return;
  const status = $("status");
  status.textContent = message;
  status.dataset.kind = kind;
  status.hidden = false;
  clearTimeout(statusTimer);
  if (kind !== "error") statusTimer = setTimeout(() => (status.hidden = true), STATUS_CLEAR_MS);
}

function showError(error) {
  if (error?.name === "AbortError") return;
  showStatus(error instanceof ApiError ? error.message : t("error.unexpected", { error }), "error");
  if (!(error instanceof ApiError)) console.warn(error);
}

// --- confirmation dialog -----------------------------------------------------------------------

function confirmAction(message, okLabel) {
  const dialog = $("confirm-dialog");
  $("confirm-message").textContent = message;
  $("confirm-ok").textContent = okLabel;
  return new Promise((resolve) => {
    const finish = (ok) => {
      $("confirm-ok").removeEventListener("click", onOk);
      $("confirm-cancel").removeEventListener("click", onCancel);
      dialog.removeEventListener("close", onCancel);
      if (dialog.open) dialog.close();
      resolve(ok);
    };
    const onOk = () => finish(true);
    const onCancel = () => finish(false);
    $("confirm-ok").addEventListener("click", onOk);
    $("confirm-cancel").addEventListener("click", onCancel);
    dialog.addEventListener("close", onCancel); // Escape
    dialog.showModal();
  });
}

// --- signed out --------------------------------------------------------------------------------

// Without a sign-in nothing works: say so and turn every control off for good (inert, so that no
// late answer can turn one back on).
function showSignedOut(message = t("signin.out")) {
  showStatus(message, "error");
  signedOut = true;
  // The language switch stays: the message is read in the language the user picks.
  for (const control of document.querySelectorAll("input, textarea, button:not(#lang-switch)")) control.disabled = true;
  for (const part of document.querySelectorAll("nav, main")) part.inert = true;
  if ($("confirm-dialog").open) $("confirm-dialog").close();
}

// --- privacy changes that need the manage scope ------------------------------------------------

// What replacing ``old`` by ``next`` gives up, as sentences for the confirmation: the same changes
// the server asks the manage scope for (cloud_infer/privacy/protocol.py, privacy_reductions).
function privacyReductions(old, next) {
  const reductions = [];
  if (old.paused && !next.paused) reductions.push(t("reduce.resume"));
  const apps = new Set(next.excluded_apps.map((app) => app.trim().toLowerCase()));
  const appsFreed = old.excluded_apps.filter((app) => !apps.has(app));
  if (appsFreed.length) reductions.push(t("reduce.apps", { apps: appsFreed.join(", ") }));
  const patterns = new Set(next.excluded_title_patterns);
  const patternsFreed = old.excluded_title_patterns.filter((pattern) => !patterns.has(pattern));
  if (patternsFreed.length) {
    reductions.push(t("reduce.titles", { patterns: patternsFreed.join(", ") }));
  }
  if (old.retention_days !== next.retention_days || old.retention_max_bytes !== next.retention_max_bytes) {
    const days = (value) => (value === null ? t("reduce.forever") : t("reduce.days", { n: value }));
    const shorter =
      next.retention_days !== null && (old.retention_days === null || next.retention_days < old.retention_days);
    const loss = shorter ? t("reduce.loss") : "";
    reductions.push(t("reduce.retention", { next: days(next.retention_days), old: days(old.retention_days), loss }));
  }
  return reductions;
}

// --- tabs --------------------------------------------------------------------------------------

const TABS = ["search", "ask", "assist", "privacy", "macros"];
const DATE_READINGS = ["both", "seen", "about"];
const tabShown = new Map(); // tab -> what to do each time it is shown

function selectTab(name, focus = false) {
  for (const tab of TABS) {
    const selected = tab === name;
    const button = $(`tab-${tab}`);
    button.setAttribute("aria-selected", String(selected));
    button.tabIndex = selected ? 0 : -1;
    $(`panel-${tab}`).hidden = !selected;
    if (selected && focus) button.focus();
  }
  tabShown.get(name)?.();
}

// The tabs are one stop for Tab (roving tabindex); arrows, Home and End move between them.
function setUpTabs() {
  for (const tab of TABS) $(`tab-${tab}`).addEventListener("click", () => selectTab(tab));
  document.querySelector('[role="tablist"]').addEventListener("keydown", (event) => {
    const current = TABS.findIndex((tab) => $(`tab-${tab}`).getAttribute("aria-selected") === "true");
    const moves = { ArrowRight: current + 1, ArrowLeft: current - 1, Home: 0, End: TABS.length - 1 };
    if (!(event.key in moves)) return;
    event.preventDefault();
    selectTab(TABS[(moves[event.key] + TABS.length) % TABS.length], true);
  });
}

// --- the app -----------------------------------------------------------------------------------

class Sidebar {
  constructor(api, desktop) {
    this.api = api;
    this.desktop = desktop; // the desktop session the sidebar was opened for, if the link says
    this.manage = api.can("manage");
    this.searchAbort = null;
    this.searchTimer = 0;
    this.liveTimer = 0;
    this.query = "";
    this.privacy = null;
    this.moment = null; // the MomentResponse shown, plus the hit it was opened from
    this.frameRow = null;
    this.askId = "";
    this.askCount = 0;
    this.thumbs = new IntersectionObserver((entries) => this.#loadVisibleThumbs(entries), {
      rootMargin: "200px",
    });
  }

  start() {
    $("search-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.search();
    });
    $("search-input").addEventListener("input", () => {
      clearTimeout(this.searchTimer);
      this.searchTimer = setTimeout(() => this.search(), SEARCH_DEBOUNCE_MS);
    });
    for (const id of ["filter-app", "filter-title", "filter-url", "filter-start", "filter-end"]) {
      $(id).addEventListener("change", () => this.search());
    }
    $("live-refresh").addEventListener("click", () => this.search());
    $("moment-back").addEventListener("click", () => this.closeMoment());
    $("moment-forget").addEventListener("click", () => this.forgetMoment());
    $("moment-exclude-app").addEventListener("click", () => this.excludeMomentApp());
    $("ask-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.ask();
    });
    $("ask-input").addEventListener("keydown", (event) => {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        this.ask();
      }
    });
    $("ask-cancel").addEventListener("click", () => this.cancelAsk());
    $("privacy-pause").addEventListener("change", () => this.setPaused($("privacy-pause").checked));
    $("privacy-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.savePrivacyLists();
    });
    $("erase-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.eraseRange();
    });
    $("erase-all").addEventListener("click", () => this.eraseEverything());
    $("export").addEventListener("click", () => this.exportHistory());
    document.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && !$("moment").hidden && !$("confirm-dialog").open) this.closeMoment();
      const typing =
        event.target instanceof HTMLInputElement ||
        event.target instanceof HTMLTextAreaElement ||
        event.target instanceof HTMLSelectElement;
      if (event.key === "/" && !typing) {
        event.preventDefault();
        selectTab("search");
        $("search-input").focus();
      }
    });

    const now = new Date();
    $("erase-start").value = toLocalInput(new Date(now.getTime() - 3_600_000));
    $("erase-end").value = toLocalInput(now);
    if (!this.manage) {
      for (const id of ["erase-range", "erase-all", "moment-forget", "privacy-retention"]) {
        $(id).disabled = true;
        $(id).dataset.i18nAttr = "title:privacy.readOnly";
        $(id).title = t("privacy.readOnly");
        $(id).setAttribute("aria-describedby", "read-only-note");
      }
      setText($("read-only-note"), "privacy.readOnly");
      $("read-only-note").hidden = false;
    }

    this.live = this.api.live({
      onMessage: (message) => this.#onLive(message),
      onState: (state) => {
        const badge = $("live-status");
        setText(badge, `live.${state}`);
        badge.dataset.state = state;
      },
    });
    this.loadPrivacy();
    this.search();
    this.tryPanel = new TryPanel(this.api, {
      search: (text) => {
        $("search-input").value = text;
        this.search();
      },
      ask: (text) => {
        selectTab("ask");
        $("ask-input").value = text;
        this.ask();
      },
    });
    this.tryPanel.start();
    // Words built here follow a switch of language; the lists are drawn again for their dates.
    onLangChange(() => {
      for (const node of document.querySelectorAll("time[datetime]")) {
        if (node.closest("#results, #moment")) continue; // redrawn whole below
        node.textContent = formatTime(node.getAttribute("datetime"));
      }
      if (this.lastSearch) {
        this.#showQuery(this.lastSearch.query);
        this.#showResults(this.lastSearch.hits, this.lastSearch.filtered);
      }
      if (this.moment) this.#renderMoment(this.moment, this.moment.hit, false);
    });
    // Assist connects when first shown: a sidebar used only for search keeps one socket.
    const assist = new AssistPanel(this.api);
    assist.start();
    tabShown.set("assist", () => assist.show());
    this.macros = new MacrosPanel(
      this.api,
      { confirm: confirmAction, status: showStatus, error: showError, showTab: () => selectTab("macros") },
      this.desktop,
    );
    this.macros.start();
    tabShown.set("macros", () => this.macros.show());
    this.health = new HealthNotices(this.api, { confirm: confirmAction, status: showStatus, error: showError });
    this.health.start();
  }

  // The sign-in ended (too old, or revoked): no history stays on screen.
  signOut() {
    clearTimeout(this.searchTimer);
    clearTimeout(this.liveTimer);
    this.searchAbort?.abort();
    this.closeMoment();
    this.api.forgetFrames();
    $("results").replaceChildren();
    $("answer").replaceChildren();
    $("citations").replaceChildren();
    $("assist-output").replaceChildren();
    this.macros?.signOut();
    this.health?.stop();
    showSignedOut();
  }

  // --- search ----------------------------------------------------------------------------------

  #searchParams() {
    return {
      q: $("search-input").value.trim(),
      app: $("filter-app").value.trim(),
      title: $("filter-title").value.trim(),
      url: $("filter-url").value.trim(),
      start: toInstant($("filter-start").value),
      end: toInstant($("filter-end").value),
    };
  }

  async search() {
    clearTimeout(this.searchTimer);
    this.searchAbort?.abort();
    const params = this.#searchParams();
    if (params.q !== this.query) this.dateReading = "both"; // a new query reads its date both ways
    this.query = params.q;
    $("live-refresh").hidden = true;
    this.closeMoment();
    const abort = new AbortController();
    this.searchAbort = abort;
    $("results").setAttribute("aria-busy", "true");
    try {
      const response = await this.api.search(
        { ...params, limit: SEARCH_LIMIT, tz: TIME_ZONE, dates: this.dateReading ?? "both" }, abort.signal);
      if (abort.signal.aborted) return;
      const filtered = Object.values(params).some(Boolean);
      setText($("results-heading"), filtered ? "results.results" : "results.recent");
      this.lastSearch = { query: response.query, hits: response.hits, filtered };
      this.#showQuery(response.query);
      this.#showResults(response.hits, filtered);
    } catch (error) {
      if (!abort.signal.aborted) showError(error);
    } finally {
      if (this.searchAbort === abort) $("results").setAttribute("aria-busy", "false");
    }
  }

  #showQuery(parsed) {
    const info = $("query-info");
    const parts = [];
    if (parsed?.phrases?.length) parts.push(t("query.understood", { phrases: parsed.phrases.join(", ") }));
    if (parsed?.start || parsed?.end) {
      const from = parsed.start ? dateTimeFormat().format(new Date(parsed.start)) : "…";
      const to = parsed.end ? dateTimeFormat().format(new Date(parsed.end)) : t("query.now");
      parts.push(`${from} – ${to}`);
    }
    if (parsed?.rewritten) parts.push(t("query.also", { words: parsed.rewritten }));
    info.replaceChildren(parts.join(" · "));
    // A date in the query: when it was seen, what it is about, or both (ranked); the user can switch.
    if ((parsed?.dates && parsed.dates !== "seen") || (this.dateReading && this.dateReading !== "both")) {
      const chips = el("span", { class: "chips", role: "group", "aria-label": t("dates.label") });
      for (const reading of DATE_READINGS) {
        const chip = el("button", {
          type: "button", class: "chip", "data-testid": `dates-${reading}`,
          "aria-pressed": String((parsed?.dates ?? "both") === reading),
        }, t(`dates.${reading}`));
        chip.addEventListener("click", () => { this.dateReading = reading; this.search(); });
        chips.append(chip);
      }
      info.append(" ", chips);
    }
    info.hidden = info.childNodes.length === 0 || info.textContent === "";
  }

  // With no query or filter the hits are the newest moments: none means nothing is captured yet.
  #showResults(hits, filtered) {
    const list = $("results");
    for (const img of list.querySelectorAll("img")) this.thumbs.unobserve(img);
    list.replaceChildren(...hits.map((hit) => this.#resultItem(hit)));
    $("results-intro").hidden = filtered || hits.length > 0;
    $("results-empty").hidden = !filtered || hits.length > 0;
  }

  #resultItem(hit) {
    const snippet = el("p", { class: "snippet", "data-testid": "result-snippet" });
    for (const fragment of hit.snippet ?? []) {
      snippet.append(fragment.hit ? el("mark", { "data-testid": "snippet-hit" }, fragment.text) : fragment.text);
    }
    const thumb = el("img", {
      class: "thumb",
      alt: "",
      "data-testid": "result-thumb",
      width: 96,
      height: 60,
    });
    if (hit.thumb_url || hit.frame_url) {
      thumb.dataset.src = hit.thumb_url || hit.frame_url;
      this.thumbs.observe(thumb);
    } else {
      thumb.classList.add("thumb-none");
    }
    const open = el(
      "button",
      { type: "button", class: "result-open", "aria-label": `${hit.title || hit.app_id}, ${formatTime(hit.time)}` },
      thumb,
      el(
        "span",
        { class: "result-text" },
        el(
          "span",
          { class: "result-head" },
          el("span", { class: "app", "data-testid": "result-app" }, hit.app_id),
          el("time", { datetime: hit.time, "data-testid": "result-time" }, formatTime(hit.time)),
        ),
        el("span", { class: "title", "data-testid": "result-title" }, hit.title || hit.url || t("results.untitled")),
        snippet,
      ),
    );
    open.addEventListener("click", () => this.openMoment(hit));
    return el("li", { class: "result", "data-testid": "result-item", dataset: { momentId: hit.moment_id } }, open);
  }

  #loadVisibleThumbs(entries) {
    for (const entry of entries) {
      if (!entry.isIntersecting) continue;
      const img = entry.target;
      this.thumbs.unobserve(img);
      this.api.frame(img.dataset.src).then(
        (url) => {
          img.src = url;
        },
        () => img.classList.add("thumb-none"),
      );
    }
  }

  #onLive(message) {
    if (message.type === "moments" && Array.isArray(message.hits)) this.#liveMoments(message.hits);
    else if (message.type?.startsWith("answer.") && message.id === this.askId) this.#onAnswer(message);
  }

  // The recent list follows new moments by itself; a search or an open moment is not pulled away
  // from under the user, who is offered a refresh instead.
  #liveMoments(hits) {
    if (hits.length === 0) return;
    if (Object.values(this.#searchParams()).some(Boolean) || !$("moment").hidden) {
      $("live-refresh").hidden = false;
      return;
    }
    clearTimeout(this.liveTimer);
    this.liveTimer = setTimeout(() => this.search(), LIVE_REFRESH_MS);
  }

  // --- moment view -----------------------------------------------------------------------------

  async openMoment(hit) {
    try {
      const moment = await this.api.moment(hit.moment_id, this.query);
      this.moment = { ...moment, hit };
      this.#renderMoment(moment, hit);
    } catch (error) {
      showError(error);
    }
  }

  #renderMoment(moment, hit, focus = true) {
    $("results-view").hidden = true;
    $("moment").hidden = false;
    $("moment-title").textContent = moment.title || moment.app_id;
    const meta = [moment.app_id, `${formatTime(moment.start)} – ${timeFormat().format(new Date(moment.end))}`];
    if (moment.url) meta.push(moment.url);
    $("moment-meta").textContent = meta.join(" · ");
    const framed = moment.rows.filter((row) => row.frame_url);
    const first =
      framed.find((row) => row.frame_url === hit.frame_url) ??
      framed.find((row) => row.boxes.some((box) => box.hit)) ??
      framed[0];
    const shown = focus ? first : (this.frameRow ?? first);
    $("moment-rows").replaceChildren(...moment.rows.map((row) => this.#momentRow(row, row === shown)));
    if (!focus) {
      // A switch of language: the frame stays, its words follow.
      if (shown) $("moment-frame").alt = t("moment.frameAlt", { time: formatTime(shown.time) });
      if (shown?.boxes.some((b) => b.hit)) setText($("moment-frame-caption"), "moment.matches");
      return;
    }
    this.#showFrame(first);
    $("moment-back").focus();
  }

  #momentRow(row, selected) {
    const body = [
      el(
        "span",
        { class: "result-head" },
        el("span", { class: "app" }, row.source),
        el("time", { datetime: row.time }, formatTime(row.time)),
      ),
      el("span", { class: "row-text" }, row.text),
    ];
    if (!row.frame_url) return el("li", { class: "moment-row" }, ...body);
    const button = el("button", { type: "button", class: "moment-row-open", "aria-pressed": String(selected) }, ...body);
    button.addEventListener("click", () => {
      for (const other of $("moment-rows").querySelectorAll("button")) other.setAttribute("aria-pressed", "false");
      button.setAttribute("aria-pressed", "true");
      this.#showFrame(row);
    });
    return el("li", { class: "moment-row" }, button);
  }

  async #showFrame(row) {
    const wrap = $("moment-frame-wrap");
    const img = $("moment-frame");
    const boxes = $("moment-boxes");
    this.frameRow = row;
    boxes.replaceChildren();
    img.removeAttribute("src");
    wrap.hidden = !row;
    if (!row) return;
    img.alt = t("moment.frameAlt", { time: formatTime(row.time) });
    if (row.boxes.some((b) => b.hit)) setText($("moment-frame-caption"), "moment.matches");
    else $("moment-frame-caption").replaceChildren();
    let url;
    try {
      url = await this.api.frame(row.frame_url);
    } catch (error) {
      showError(error);
      return;
    }
    if (this.moment === null || this.frameRow !== row) return; // the view moved on meanwhile
    img.src = url;
    await img.decode().catch(() => {});
    // Boxes are placed in percent of the frame, so they follow the image at any sidebar width.
    const width = row.frame_width || img.naturalWidth;
    const height = row.frame_height || img.naturalHeight;
    if (!width || !height) return;
    for (const box of row.boxes.filter((b) => b.hit)) {
      const node = el("div", { class: "hit-box", "data-testid": "hit-box", title: box.text });
      node.style.left = `${(box.x0 / width) * 100}%`;
      node.style.top = `${(box.y0 / height) * 100}%`;
      node.style.width = `${((box.x1 - box.x0) / width) * 100}%`;
      node.style.height = `${((box.y1 - box.y0) / height) * 100}%`;
      boxes.append(node);
    }
  }

  closeMoment() {
    if ($("moment").hidden) return;
    this.moment = null;
    $("moment").hidden = true;
    $("results-view").hidden = false;
    $("moment-boxes").replaceChildren();
    $("moment-frame").removeAttribute("src");
  }

  async forgetMoment() {
    const moment = this.moment;
    if (!moment) return;
    const ok = await confirmAction(
      t("moment.forgetConfirm", { title: moment.title || moment.app_id }),
      t("moment.forgetOk"),
    );
    if (!ok) return;
    try {
      const result = await this.api.forgetMoment(moment.moment_id);
      this.api.forgetFrames();
      this.closeMoment();
      showStatus(t("moment.forgotten", { rows: result.deleted_rows, files: result.deleted_objects }));
      this.tryPanel.refresh();
      await this.search();
    } catch (error) {
      showError(error);
    }
  }

  async excludeMomentApp() {
    const moment = this.moment;
    if (!moment || !this.privacy) return;
    const app = moment.app_id.toLowerCase();
    if (this.privacy.excluded_apps.includes(app)) {
      showStatus(t("moment.alreadyExcluded", { app: moment.app_id }));
      return;
    }
    if (await this.#savePrivacy({ ...this.privacy, excluded_apps: [...this.privacy.excluded_apps, app] })) {
      showStatus(t("moment.excluded", { app: moment.app_id }));
    }
  }

  // --- ask -------------------------------------------------------------------------------------

  ask() {
    const question = $("ask-input").value.trim();
    if (!question) return;
    this.cancelAsk();
    const id = `ask-${Date.now()}-${++this.askCount}`;
    if (!this.live.send({ type: "ask", id, question, tz: TIME_ZONE })) {
      showStatus(t("net.notConnected"), "error");
      return;
    }
    this.askId = id;
    this.answerText = "";
    $("answer").replaceChildren();
    $("answer").setAttribute("aria-busy", "true");
    $("citations").replaceChildren();
    $("citations-heading").hidden = true;
    $("ask-cancel").hidden = false;
    $("ask-submit").disabled = true;
  }

  cancelAsk() {
    if (!this.askId) return;
    this.live.send({ type: "cancel", id: this.askId });
    this.#endAsk();
  }

  #endAsk() {
    this.askId = "";
    $("answer").setAttribute("aria-busy", "false");
    $("ask-cancel").hidden = true;
    $("ask-submit").disabled = false;
  }

  #onAnswer(message) {
    if (message.type === "answer.delta") {
      this.answerText += String(message.text ?? "");
      $("answer").replaceChildren(...this.#answerNodes(this.answerText, []));
    } else if (message.type === "answer.done") {
      const citations = Array.isArray(message.citations) ? message.citations : [];
      // The checked answer: a loop cut short, or an uncited model answer replaced by the history's lines.
      if (typeof message.text === "string") this.answerText = message.text;
      $("answer").dataset.mode = String(message.mode ?? "");
      $("answer").replaceChildren(...this.#answerNodes(this.answerText, citations));
      $("citations").replaceChildren(...citations.map((c) => this.#citationItem(c)));
      $("citations-heading").hidden = citations.length === 0;
      this.#endAsk();
    } else if (message.type === "answer.error") {
      showStatus(String(message.message ?? t("ask.failed")), "error");
      this.#endAsk();
    }
  }

  // The answer as text, with its [n] markers made into links to the cited moments.
  #answerNodes(text, citations) {
    const byNumber = new Map(citations.map((c) => [c.n, c]));
    const nodes = [];
    let last = 0;
    for (const match of text.matchAll(/\[(\d+)\]/g)) {
      const citation = byNumber.get(Number(match[1]));
      if (!citation) continue;
      nodes.push(text.slice(last, match.index));
      const link = el("button", { type: "button", class: "cite", "data-testid": "answer-cite" }, match[0]);
      link.addEventListener("click", () => this.#openCitation(citation));
      nodes.push(link);
      last = match.index + match[0].length;
    }
    nodes.push(text.slice(last));
    return nodes;
  }

  #citationItem(citation) {
    const button = el(
      "button",
      { type: "button", class: "link" },
      `[${citation.n}] ${citation.title || citation.app_id} · ${formatTime(citation.time)}`,
    );
    button.addEventListener("click", () => this.#openCitation(citation));
    const excerpt = Array.isArray(citation.excerpt) ? citation.excerpt : [];
    const quote = el("div", { class: "excerpt" },
      ...excerpt.map((f) => (f.hit ? el("mark", {}, String(f.text)) : String(f.text))));
    return el("li", { "data-testid": "citation", dataset: { momentId: citation.moment_id } }, button, quote);
  }

  #openCitation(citation) {
    selectTab("search");
    this.openMoment({ ...citation, snippet: [], boxes: [] });
  }

  // --- privacy ---------------------------------------------------------------------------------

  async loadPrivacy() {
    try {
      this.#showPrivacy(await this.api.privacy());
    } catch (error) {
      showError(error);
    }
  }

  #showPrivacy(settings) {
    this.privacy = settings;
    $("privacy-pause").checked = settings.paused;
    // Pausing needs no more than read; resuming needs manage.
    const locked = signedOut || (settings.paused && !this.manage);
    $("privacy-pause").disabled = locked;
    $("privacy-pause").title = locked && !signedOut ? t("privacy.readOnly") : "";
    $("paused-badge").hidden = !settings.paused;
    $("privacy-apps").value = settings.excluded_apps.join("\n");
    $("privacy-titles").value = settings.excluded_title_patterns.join("\n");
    $("privacy-retention").value = settings.retention_days ?? "";
  }

  // Changes that give up privacy are confirmed first, and refused here without the manage scope.
  async #savePrivacy(settings, okLabel = t("privacy.saveOk")) {
    const reductions = privacyReductions(this.privacy, settings);
    if (reductions.length) {
      const refused = !this.manage;
      const ok = !refused && (await confirmAction(reductions.join(" "), okLabel));
      if (!ok) {
        if (refused) showStatus(t("privacy.readOnly"), "error");
        this.#showPrivacy(this.privacy); // back to what the server holds
        return false;
      }
    }
    try {
      this.#showPrivacy(await this.api.savePrivacy(settings));
      return true;
    } catch (error) {
      showError(error);
      if (this.privacy) this.#showPrivacy(this.privacy); // back to what the server holds
      return false;
    }
  }

  async setPaused(paused) {
    if (!this.privacy) return;
    if (await this.#savePrivacy({ ...this.privacy, paused }, t("privacy.resumeOk"))) {
      showStatus(t(paused ? "privacy.paused" : "privacy.resumed"));
    }
  }

  async savePrivacyLists() {
    if (!this.privacy) return;
    const lines = (id) =>
      $(id)
        .value.split("\n")
        .map((line) => line.trim())
        .filter(Boolean);
    const days = $("privacy-retention").value.trim();
    const saved = await this.#savePrivacy({
      ...this.privacy,
      excluded_apps: lines("privacy-apps"),
      excluded_title_patterns: lines("privacy-titles"),
      retention_days: days ? Number(days) : null,
    });
    if (saved) showStatus(t("privacy.saved"));
  }

  // --- erase and export ------------------------------------------------------------------------

  async eraseRange() {
    const start = $("erase-start").value;
    const end = $("erase-end").value;
    if (!start || !end || new Date(start) >= new Date(end)) {
      showStatus(t("erase.order"), "error");
      return;
    }
    const range = `${dateTimeFormat().format(new Date(start))} – ${dateTimeFormat().format(new Date(end))}`;
    const ok = await confirmAction(t("erase.confirmRange", { range }), t("erase.ok"));
    if (ok) await this.#erase({ start: toInstant(start), end: toInstant(end) });
  }

  async eraseEverything() {
    const ok = await confirmAction(t("erase.confirmAll"), t("erase.all"));
    if (ok) await this.#erase({ everything: true });
  }

  async #erase(body) {
    try {
      const result = await this.api.erase(body);
      this.api.forgetFrames();
      showStatus(t("erase.done", { rows: result.deleted_rows, files: result.deleted_objects }));
      this.closeMoment();
      this.tryPanel.refresh();
      await this.search();
    } catch (error) {
      showError(error);
    }
  }

  async exportHistory() {
    const button = $("export");
    button.disabled = true;
    showStatus(t("export.preparing"));
    try {
      const { blob, filename } = await this.api.exportHistory();
      const url = URL.createObjectURL(blob);
      const link = el("a", { href: url, download: filename, hidden: true });
      document.body.append(link);
      link.click();
      link.remove();
      // Revoke later: the download may still be reading the blob.
      setTimeout(() => URL.revokeObjectURL(url), 60_000);
      showStatus(t("export.saved", { file: filename }));
    } catch (error) {
      showError(error);
    } finally {
      button.disabled = false;
    }
  }
}

async function signIn(fragment) {
  // A login ticket rides in the fragment (never sent to a server): drop it from the address bar and
  // the history at once, before it is redeemed. A reload has none: it resumes this tab's sign-in.
  const ticket = fragment.get("login");
  if (location.hash) history.replaceState(null, "", location.pathname + location.search);
  if (!ticket) return Session.restore();
  Session.forget(); // a new sign-in replaces the one this tab had
  try {
    return await Session.signIn(ticket);
  } catch (error) {
    if (!(error instanceof ApiError) || error.status !== 401) {
      showSignedOut(t("signin.failed", { error: error.message }));
    }
    return null;
  }
}

async function main() {
  startI18n();
  setUpTabs();
  // A new sign-in link opened in this tab changes only the fragment: load the page afresh for it.
  window.addEventListener("hashchange", () => {
    if (new URLSearchParams(location.hash.slice(1)).has("login")) location.reload();
  });
  // The link may also name the desktop it was opened from (#login=…&desktop=<session id>).
  const fragment = new URLSearchParams(location.hash.slice(1));
  const session = await signIn(fragment);
  if (!session) {
    showSignedOut();
    return;
  }
  const sidebar = new Sidebar(new Api(session), fragment.get("desktop") ?? "");
  session.onEnd(() => sidebar.signOut());
  session.start();
  sidebar.start();
}

main();

// The thin client: the user's desktop (noVNC over the cloud's authenticated relay) and the Shadowdesk
// sidebar beside it, one sign-in. Opened as /desk#login=<single-use ticket>; the ticket is redeemed
// with the sidebar's own client, whose sign-in the same-origin sidebar frame finds in this tab's
// sessionStorage. The token rides only in the websocket's subprotocols, never in a URL.

import RFB from "/desk/novnc/core/rfb.js";
import { Api, ApiError, Session } from "/sidebar/static/api.js";
import { startExperience } from "./experience.js";
import { applyLang, chooseLang, currentLang, t } from "./strings.js";

const SUBPROTOCOL = "shadowdesk.v1";
const WS_TOKEN_EXPIRED = 4001;
const WS_REFUSED = 1008; // not found or not yours: reconnecting cannot help
const RECONNECT_MIN_MS = 1_000;
const RECONNECT_MAX_MS = 30_000;
const COMMAND_WAIT_MS = 30_000;
const COMMAND_POLL_MS = 250;
const PENDING = new Set(["queued", "delivered", "running"]);
const NARROW = window.matchMedia("(max-width: 899.98px)");

const $ = (id) => document.getElementById(id);

function show(element, text) {
  element.textContent = text;
  element.hidden = !text;
}

// One connection at a time to the chosen desktop; it opens again after the token's expiry (4001, with
// the refreshed token) or a network failure (with backoff), never after a refusal.
class Desktop {
  #api;
  #session;
  #sessionId = "";
  #rfb = null;
  #delay = RECONNECT_MIN_MS;
  #timer = 0;

  constructor(api, session) {
    this.#api = api;
    this.#session = session;
  }

  get sessionId() {
    return this.#sessionId;
  }

  open(sessionId) {
    this.close();
    this.#sessionId = sessionId;
    this.#connect();
  }

  close() {
    clearTimeout(this.#timer);
    const rfb = this.#rfb;
    this.#rfb = null;
    rfb?.disconnect();
  }

  focus() {
    this.#rfb?.focus();
  }

  #connect() {
    const token = this.#session.token;
    if (!token) return signedOut();
    status("connecting");
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const path = `/v1/desktop/${encodeURIComponent(this.#sessionId)}/rfb`;
    const socket = new WebSocket(`${scheme}//${location.host}${path}`, [SUBPROTOCOL, `bearer.${token}`]);
    socket.binaryType = "arraybuffer";
    const rfb = new RFB($("screen"), socket, { shared: true });
    rfb.scaleViewport = true;
    rfb.focusOnClick = true;
    this.#rfb = rfb;
    rfb.addEventListener("connect", () => {
      this.#delay = RECONNECT_MIN_MS;
      show($("desk-message"), "");
      status("connected");
    });
    socket.addEventListener("close", (event) => {
      if (this.#rfb !== rfb) return; // closed on purpose
      this.#rfb = null;
      rfb.disconnect();
      if (event.code === WS_TOKEN_EXPIRED) {
        status("reconnecting");
        this.#connect(); // the token it opened with expired; the session holds a fresh one
      } else if (event.code === WS_REFUSED) {
        status("offline");
        show($("desk-message"), t("refused", { message: reasonText(event.reason) }));
      } else {
        status("reconnecting");
        const wait = this.#delay * (0.5 + Math.random() / 2);
        this.#delay = Math.min(this.#delay * 2, RECONNECT_MAX_MS);
        this.#timer = setTimeout(() => this.#connect(), wait);
      }
    });
    startExperience({ rfb, socket, sessionId: this.#sessionId, api: this.#api });
  }
}

// "not_found: you have no session 'x'" -> the message part.
function reasonText(reason) {
  return (reason || "").replace(/^[a-z_]+: /, "") || "—";
}

let statusKey = "";
function status(key) {
  statusKey = key;
  const badge = $("desk-status");
  badge.textContent = key ? t(key) : "";
  badge.dataset.state = key;
}

function toolStatus(key, values) {
  $("tool-status").textContent = key ? t(key, values) : "";
}

function signedOut() {
  status("offline");
  show($("desk-message"), t("signedOut"));
}

// Issue a command to the desktop's agent and wait for its result (the commands API).
async function runCommand(api, sessionId, workflowStep) {
  const base = `/v1/sessions/${encodeURIComponent(sessionId)}/commands`;
  let record = await api.json("POST", base, { body: { workflow_step: workflowStep, deadline_s: 30 } });
  const giveUp = Date.now() + COMMAND_WAIT_MS;
  while (PENDING.has(record.status)) {
    if (Date.now() > giveUp) throw new ApiError("the desktop did not answer in time");
    await new Promise((resolve) => setTimeout(resolve, COMMAND_POLL_MS));
    record = await api.json("GET", `${base}/${encodeURIComponent(record.command_id)}`);
  }
  if (record.status !== "succeeded") throw new ApiError(record.error || record.status);
  return record;
}

function setUpTools(api, desktop) {
  const input = $("type-input");
  $("type-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = input.value;
    if (!text || !desktop.sessionId) return;
    const button = $("type-submit");
    button.disabled = true;
    toolStatus("typing");
    try {
      // The agent types it into whatever has the focus, with its keyboard map borrowed for
      // characters the keyboard lacks: Chinese from the user's own IME arrives as it was written.
      await runCommand(api, desktop.sessionId, { type_text: { text } });
      input.value = "";
      toolStatus("typed");
    } catch (error) {
      toolStatus("failed", { message: error.message });
    } finally {
      button.disabled = false;
    }
  });

  // The clipboard goes through the agent too: RFB's cut text is Latin-1, and Chinese must survive.
  const clip = $("clip-text");
  $("clip-from").addEventListener("click", async () => {
    toolStatus("copying");
    try {
      const record = await runCommand(api, desktop.sessionId, { get_clipboard: {} });
      clip.value = record.observed.value ?? "";
      try {
        await navigator.clipboard.writeText(clip.value);
      } catch {
        // The browser may not let a page write its clipboard: the text is in the box to copy.
      }
      toolStatus("copied");
    } catch (error) {
      toolStatus("failed", { message: error.message });
    }
  });
  $("clip-to").addEventListener("click", async () => {
    let text = clip.value;
    if (!text) {
      try {
        text = await navigator.clipboard.readText();
      } catch {
        text = ""; // not allowed: the user pastes into the box instead
      }
    }
    if (!text) return toolStatus("nothingToSend");
    toolStatus("sending");
    try {
      await runCommand(api, desktop.sessionId, { set_clipboard: { text } });
      toolStatus("sent");
    } catch (error) {
      toolStatus("failed", { message: error.message });
    }
  });
}

// On narrow screens the sidebar is a drawer: the toggle opens it, Esc or the toggle close it, and the
// focus goes into it and back. On wide screens it is always there beside the desktop.
function setUpDrawer() {
  const toggle = $("sidebar-toggle");
  const panel = $("sidebar-panel");
  const setOpen = (open, { returnFocus = false } = {}) => {
    const drawer = NARROW.matches;
    const visible = !drawer || open;
    toggle.setAttribute("aria-expanded", String(visible));
    toggle.hidden = !drawer;
    panel.classList.toggle("open", drawer && open);
    panel.inert = !visible;
    if (drawer && open) $("sidebar-frame").focus();
    if (returnFocus) toggle.focus();
  };
  toggle.addEventListener("click", () => setOpen(toggle.getAttribute("aria-expanded") !== "true"));
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && NARROW.matches && panel.classList.contains("open")) {
      setOpen(false, { returnFocus: true });
    }
  });
  // Esc pressed inside the sidebar frame (same origin) closes the drawer too.
  $("sidebar-frame").addEventListener("load", () => {
    const inner = $("sidebar-frame").contentDocument;
    inner?.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && NARROW.matches && panel.classList.contains("open")) {
        setOpen(false, { returnFocus: true });
      }
    });
  });
  NARROW.addEventListener("change", () => setOpen(false));
  setOpen(false);
}

function setUpLanguage() {
  const button = $("lang-switch");
  const apply = (lang) => {
    applyLang(document, lang);
    button.textContent = lang === "zh" ? "English" : "中文";
    button.lang = lang === "zh" ? "en" : "zh";
    button.setAttribute("aria-label", t("switchTo", {}, lang));
    status(statusKey);
  };
  button.addEventListener("click", () => {
    const next = currentLang() === "zh" ? "en" : "zh";
    chooseLang(next);
    apply(next);
  });
  // The sidebar frame (or another tab) switched: follow it.
  window.addEventListener("storage", () => apply(currentLang()));
  apply(currentLang());
}

async function signIn(fragment) {
  const ticket = fragment.get("login");
  // The ticket leaves the address bar and the history before it is redeemed.
  if (location.hash) history.replaceState(null, "", location.pathname + location.search);
  if (!ticket) return Session.restore();
  Session.forget(); // a new sign-in replaces the one this tab had
  try {
    return await Session.signIn(ticket);
  } catch {
    return null;
  }
}

async function main() {
  setUpLanguage();
  setUpDrawer();
  window.addEventListener("hashchange", () => {
    if (new URLSearchParams(location.hash.slice(1)).has("login")) location.reload();
  });
  const fragment = new URLSearchParams(location.hash.slice(1));
  const wanted = fragment.get("desktop") ?? "";
  const session = await signIn(fragment);
  if (!session) return signedOut();
  session.start();
  const api = new Api(session);
  const desktop = new Desktop(api, session);
  session.onEnd(() => {
    desktop.close();
    signedOut();
  });
  // The sidebar signs in from this tab's sessionStorage, so it loads only now.
  $("sidebar-frame").src = wanted ? `/sidebar#desktop=${encodeURIComponent(wanted)}` : "/sidebar";
  setUpTools(api, desktop);

  let sessions;
  try {
    ({ sessions } = await api.json("GET", "/v1/desktop/sessions"));
  } catch (error) {
    status("offline");
    return show($("desk-message"), t("failed", { message: error.message }));
  }
  if (!sessions.length) {
    status("offline");
    return show($("desk-message"), t("noDesktop"));
  }
  const select = $("desktop-select");
  for (const id of sessions) select.append(new Option(id, id));
  select.value = sessions.includes(wanted) ? wanted : sessions[0];
  select.hidden = sessions.length < 2;
  select.addEventListener("change", () => desktop.open(select.value));
  desktop.open(select.value);
}

main();

// The sidebar's client of the Shadowdesk API: the sign-in (a single-use login ticket redeemed for a
// short-lived token, refreshed before it expires), authenticated fetches with deadlines, frame images
// as blob URLs (an <img> cannot send the Authorization header), and the live websockets. No token ever
// goes into a URL or to the console.

import { t } from "/sidebar/static/i18n.js";

const REQUEST_TIMEOUT_MS = 15_000;
const EXPORT_TIMEOUT_MS = 300_000;
const STOP_TIMEOUT_MS = 60_000;
const FRAME_CACHE_SIZE = 200;
const RECONNECT_MIN_MS = 1_000;
const RECONNECT_MAX_MS = 30_000;
const REFRESH_AT = 0.8; // of a token's lifetime
const REFRESH_RETRY_MIN_MS = 2_000;
const REFRESH_RETRY_MAX_MS = 60_000;
// This tab's sign-in survives a reload (which has no ticket any more), and only this tab sees it.
const SESSION_KEY = "shadowdesk.session";
const SUBPROTOCOL = "shadowdesk.v1";
const WS_TOKEN_EXPIRED = 4001;

export class ApiError extends Error {
  // problems: what is wrong with a document, each {path, message} (a macro that does not validate).
  constructor(message, status = 0, code = "", problems = []) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.problems = problems;
  }
}

async function errorFrom(response) {
  let message = `${response.status} ${response.statusText}`.trim();
  let code = "";
  let problems = [];
  try {
    const body = await response.json();
    // The documented shape nests the error; accept the flat {code, message} shape too.
    const error = body && typeof body.error === "object" && body.error !== null ? body.error : body;
    if (error && typeof error.message === "string" && error.message) message = error.message;
    if (error && typeof error.code === "string") code = error.code;
    if (Array.isArray(body?.errors)) {
      problems = body.errors.filter((p) => p && typeof p.path === "string" && typeof p.message === "string");
    }
  } catch {
    // Not JSON (a proxy's error page): the status line is all there is.
  }
  return new ApiError(message, response.status, code, problems);
}

// One call to the API with a deadline; a failure becomes an ApiError with the server's message.
// ``body`` is sent as JSON; ``text`` as it is, with its ``contentType``.
async function call(
  method,
  path,
  { token, params, body, text, contentType, signal, timeoutMs = REQUEST_TIMEOUT_MS } = {},
) {
  const url = new URL(path, location.origin);
  for (const [key, value] of Object.entries(params ?? {})) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(key, String(value));
  }
  const headers = {};
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (text !== undefined) headers["Content-Type"] = contentType;
  const deadline = AbortSignal.timeout(timeoutMs);
  let response;
  try {
    response = await fetch(url, {
      method,
      headers,
      body: text ?? (body === undefined ? undefined : JSON.stringify(body)),
      signal: signal ? AbortSignal.any([signal, deadline]) : deadline,
      cache: "no-store",
      credentials: "omit",
    });
  } catch (error) {
    if (signal?.aborted) throw error; // superseded by the caller: not an error to show
    if (deadline.aborted) throw new ApiError(t("api.timeout"));
    throw new ApiError(t("api.unreachable"));
  }
  if (!response.ok) throw await errorFrom(response);
  return response;
}

// The sign-in of this tab: the token, what it may do, and its refresh at ~80% of its lifetime. The
// server ends a sign-in (refresh answered 401) when it is too old or its tokens were revoked; then
// onEnd runs, once.
export class Session {
  #token;
  #expiresAt; // ms since the epoch
  #refreshAt;
  #scopes;
  #timer = 0;
  #retryMs = REFRESH_RETRY_MIN_MS;
  #ended = false;
  #endListeners = [];

  constructor(fields) {
    this.#set(fields);
  }

  // Redeem a login ticket (it is its own credential: no Authorization header). A ticket works once.
  static async signIn(ticket) {
    const response = await call("POST", "/v1/auth/session", { body: { ticket } });
    const session = new Session(Session.#fields(await response.json()));
    session.#save();
    return session;
  }

  // The sign-in this tab stored before a reload, if it is still alive.
  static restore() {
    let stored;
    try {
      stored = JSON.parse(sessionStorage.getItem(SESSION_KEY) ?? "null");
    } catch {
      return null; // storage off or garbled: sign in again
    }
    const valid =
      stored &&
      typeof stored.token === "string" &&
      Number.isFinite(stored.expiresAt) &&
      Number.isFinite(stored.refreshAt) &&
      Array.isArray(stored.scopes);
    if (!valid || stored.expiresAt <= Date.now()) {
      Session.forget();
      return null;
    }
    return new Session(stored);
  }

  static forget() {
    try {
      sessionStorage.removeItem(SESSION_KEY);
    } catch {
      // storage off: nothing was kept
    }
  }

  // A token response of the API, as this class keeps it.
  static #fields(grant) {
    const now = Date.now();
    const expiresAt = Date.parse(grant.expires_at);
    return {
      token: String(grant.token),
      expiresAt,
      refreshAt: now + (expiresAt - now) * REFRESH_AT,
      scopes: Array.isArray(grant.scopes) ? grant.scopes : [],
    };
  }

  get token() {
    return this.#token;
  }

  get ended() {
    return this.#ended;
  }

  can(scope) {
    return this.#scopes.has(scope);
  }

  onEnd(listener) {
    this.#endListeners.push(listener);
  }

  // Keep the token fresh from now on.
  start() {
    this.#schedule(this.#refreshAt - Date.now());
  }

  // Signed out: the token is dropped here and in this tab's storage.
  end() {
    if (this.#ended) return;
    this.#ended = true;
    clearTimeout(this.#timer);
    this.#token = "";
    Session.forget();
    for (const listener of this.#endListeners) listener();
  }

  #schedule(delayMs) {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => this.#refresh(), Math.max(0, delayMs));
  }

  async #refresh() {
    if (this.#ended) return;
    let grant;
    try {
      grant = await (await call("POST", "/v1/auth/refresh", { token: this.#token })).json();
    } catch (error) {
      // A refused refresh ends the sign-in; a server out of reach is tried again while the token lives.
      if (error.status === 401 || Date.now() >= this.#expiresAt) {
        this.end();
      } else {
        this.#schedule(this.#retryMs);
        this.#retryMs = Math.min(this.#retryMs * 2, REFRESH_RETRY_MAX_MS);
      }
      return;
    }
    if (this.#ended) return;
    this.#set(Session.#fields(grant));
    this.#retryMs = REFRESH_RETRY_MIN_MS;
    this.#save();
    this.#schedule(this.#refreshAt - Date.now());
  }

  #set({ token, expiresAt, refreshAt, scopes }) {
    this.#token = token;
    this.#expiresAt = expiresAt;
    this.#refreshAt = refreshAt;
    this.#scopes = new Set(scopes);
  }

  #save() {
    const stored = {
      token: this.#token,
      expiresAt: this.#expiresAt,
      refreshAt: this.#refreshAt,
      scopes: [...this.#scopes],
    };
    try {
      sessionStorage.setItem(SESSION_KEY, JSON.stringify(stored));
    } catch {
      // storage off: a reload will need a new sign-in link
    }
  }
}

export class Api {
  #session;
  #frames = new Map(); // path -> Promise<blob URL>, oldest first

  constructor(session) {
    this.#session = session;
  }

  can(scope) {
    return this.#session.can(scope);
  }

  // A 401 means the token is no longer good (revoked, or expired while it could not be refreshed).
  async request(method, path, options = {}) {
    try {
      return await call(method, path, { ...options, token: this.#session.token });
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) this.#session.end();
      throw error;
    }
  }

  async json(method, path, options) {
    const response = await this.request(method, path, options);
    return response.json();
  }

  search(params, signal) {
    return this.json("GET", "/v1/recall/search", { params, signal });
  }

  // First queries that find something in this user's history ("Try this").
  suggestions() {
    return this.json("GET", "/v1/recall/suggestions", {
      params: { tz: Intl.DateTimeFormat().resolvedOptions().timeZone },
    });
  }

  moment(momentId, query) {
    return this.json("GET", `/v1/recall/moments/${encodeURIComponent(momentId)}`, { params: { q: query } });
  }

  forgetMoment(momentId) {
    return this.json("DELETE", `/v1/recall/moments/${encodeURIComponent(momentId)}`);
  }

  erase(body) {
    return this.json("POST", "/v1/recall/erase", { body });
  }

  privacy() {
    return this.json("GET", "/v1/privacy");
  }

  savePrivacy(settings) {
    return this.json("PUT", "/v1/privacy", { body: settings });
  }

  async exportHistory() {
    const response = await this.request("GET", "/v1/recall/export", { timeoutMs: EXPORT_TIMEOUT_MS });
    const disposition = response.headers.get("Content-Disposition") ?? "";
    const match = /filename\*?=(?:UTF-8'')?"?([^";]+)"?/i.exec(disposition);
    const filename = match ? decodeURIComponent(match[1]) : "shadowdesk-history.zip";
    return { blob: await response.blob(), filename };
  }

  // A blob URL of a frame path from the API (frame_url / thumb_url), fetched once and cached.
  frame(path) {
    let pending = this.#frames.get(path);
    if (pending) {
      this.#frames.delete(path); // re-insert: most recently used last
    } else {
      pending = this.request("GET", path).then(async (r) => URL.createObjectURL(await r.blob()));
      pending.catch(() => this.#frames.delete(path));
    }
    this.#frames.set(path, pending);
    while (this.#frames.size > FRAME_CACHE_SIZE) {
      const [oldest, url] = this.#frames.entries().next().value;
      this.#frames.delete(oldest);
      url.then(URL.revokeObjectURL, () => {});
    }
    return pending;
  }

  // After an erasure the cached frames may be gone on the server: drop them here too.
  forgetFrames() {
    for (const url of this.#frames.values()) url.then(URL.revokeObjectURL, () => {});
    this.#frames.clear();
  }

  // --- desktops, recordings, macros and their runs ---------------------------------------------

  sessions() {
    return this.json("GET", "/v1/sessions");
  }

  startRecording(sessionId) {
    return this.json("POST", "/v1/workflows/recordings", { body: { session_id: sessionId } });
  }

  recording(recordingId) {
    return this.json("GET", `/v1/workflows/recordings/${encodeURIComponent(recordingId)}`);
  }

  // Stopping waits for the agent's last actions and compiles them: longer than a plain request.
  stopRecording(recordingId, name) {
    return this.json("POST", `/v1/workflows/recordings/${encodeURIComponent(recordingId)}/stop`, {
      body: { name },
      timeoutMs: STOP_TIMEOUT_MS,
    });
  }

  macros() {
    return this.json("GET", "/v1/workflows/macros");
  }

  macro(macroId) {
    return this.json("GET", `/v1/workflows/macros/${encodeURIComponent(macroId)}`);
  }

  // Saves ``document`` (YAML) as the macro's next version; a document that does not validate is an
  // ApiError whose ``problems`` say where and what.
  saveMacro(macroId, document) {
    return this.json("PUT", `/v1/workflows/macros/${encodeURIComponent(macroId)}`, {
      text: document,
      contentType: "application/yaml; charset=utf-8",
    });
  }

  deleteMacro(macroId) {
    return this.request("DELETE", `/v1/workflows/macros/${encodeURIComponent(macroId)}`);
  }

  // Secrets go in ``secrets`` of this one request and nowhere else.
  startRun({ macroId, sessionId, parameters, secrets }) {
    return this.json("POST", "/v1/workflows/runs", {
      body: { macro_id: macroId, session_id: sessionId, parameters, secrets },
    });
  }

  runs(macroId) {
    return this.json("GET", "/v1/workflows/runs", { params: { macro_id: macroId } });
  }

  run(runId) {
    return this.json("GET", `/v1/workflows/runs/${encodeURIComponent(runId)}`);
  }

  answerRun(runId, decision, questionId) {
    return this.json("POST", `/v1/workflows/runs/${encodeURIComponent(runId)}/answer`, {
      body: { decision, question_id: questionId },
      timeoutMs: STOP_TIMEOUT_MS,
    });
  }

  cancelRun(runId) {
    return this.json("POST", `/v1/workflows/runs/${encodeURIComponent(runId)}/cancel`, {
      timeoutMs: STOP_TIMEOUT_MS,
    });
  }

  health() {
    return this.json("GET", "/v1/me/health");
  }

  // Waits for the desktop's result, which may take as long as the fix's command deadline.
  applyHealthFix(incidentId, fixId) {
    const path = `/v1/me/health/${encodeURIComponent(incidentId)}/fixes/${encodeURIComponent(fixId)}`;
    return this.json("POST", path, { timeoutMs: STOP_TIMEOUT_MS + 10_000 });
  }

  live(handlers) {
    return this.#socket("/v1/recall/live", handlers);
  }

  workflowsLive(handlers) {
    return this.#socket("/v1/workflows/live", handlers);
  }

  assist(handlers) {
    return this.#socket("/v1/assist/live", handlers);
  }

  #socket(path, handlers) {
    const socket = new LiveSocket(path, () => this.#session.token, handlers);
    this.#session.onEnd(() => socket.close());
    return socket;
  }
}

// A live websocket, reconnecting with backoff. A browser cannot set headers on a websocket, and a
// token must never ride in a URL, so the token is offered as a subprotocol ("bearer.<token>") beside
// the protocol itself; the server accepts with "shadowdesk.v1". It closes the socket with 4001 when the
// token it was opened with expires: the socket opens again at once with the current, refreshed token.
export class LiveSocket {
  #path;
  #token; // () => the current token
  #handlers;
  #socket = null;
  #delay = RECONNECT_MIN_MS;
  #timer = 0;
  #closed = false;

  constructor(path, token, { onMessage, onState }) {
    this.#path = path;
    this.#token = token;
    this.#handlers = { onMessage, onState };
    this.#connect();
  }

  get open() {
    return this.#socket?.readyState === WebSocket.OPEN;
  }

  send(message) {
    if (!this.open) return false;
    this.#socket.send(JSON.stringify(message));
    return true;
  }

  close() {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#socket?.close();
  }

  #connect() {
    const token = this.#token();
    if (!token) {
      this.close(); // signed out
      this.#handlers.onState("closed");
      return;
    }
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const socket = new WebSocket(`${scheme}//${location.host}${this.#path}`, [SUBPROTOCOL, `bearer.${token}`]);
    this.#socket = socket;
    this.#handlers.onState("connecting");
    socket.addEventListener("open", () => {
      this.#delay = RECONNECT_MIN_MS;
      this.#handlers.onState("open");
    });
    socket.addEventListener("message", (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return; // not ours to interpret
      }
      if (message && typeof message.type === "string") this.#handlers.onMessage(message);
    });
    socket.addEventListener("close", (event) => {
      if (this.#socket !== socket) return;
      this.#socket = null;
      this.#handlers.onState("closed");
      if (this.#closed) return;
      if (event.code === WS_TOKEN_EXPIRED) {
        this.#connect(); // the token it was opened with expired; the session holds a fresh one
        return;
      }
      // Jittered exponential backoff, so many sidebars do not reconnect in lockstep after a restart.
      const wait = this.#delay * (0.5 + Math.random() / 2);
      this.#delay = Math.min(this.#delay * 2, RECONNECT_MAX_MS);
      this.#timer = setTimeout(() => this.#connect(), wait);
    });
  }
}

// The sidebar's client of the Shadowdesk API: authenticated fetches with deadlines, frame images as
// blob URLs (an <img> cannot send the Authorization header), and the live websockets.

const REQUEST_TIMEOUT_MS = 15_000;
const EXPORT_TIMEOUT_MS = 300_000;
const FRAME_CACHE_SIZE = 200;
const RECONNECT_MIN_MS = 1_000;
const RECONNECT_MAX_MS = 30_000;

export class ApiError extends Error {
  constructor(message, status = 0, code = "") {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
  }
}

async function errorFrom(response) {
  let message = `${response.status} ${response.statusText}`.trim();
  let code = "";
  try {
    const body = await response.json();
    // The documented shape nests the error; accept the flat {code, message} shape too.
    const error = body && typeof body.error === "object" && body.error !== null ? body.error : body;
    if (error && typeof error.message === "string" && error.message) message = error.message;
    if (error && typeof error.code === "string") code = error.code;
  } catch {
    // Not JSON (a proxy's error page): the status line is all there is.
  }
  return new ApiError(message, response.status, code);
}

export class Api {
  #token;
  #frames = new Map(); // path -> Promise<blob URL>, oldest first

  constructor(token) {
    this.#token = token;
  }

  async request(method, path, { params, body, signal, timeoutMs = REQUEST_TIMEOUT_MS } = {}) {
    const url = new URL(path, location.origin);
    for (const [key, value] of Object.entries(params ?? {})) {
      if (value !== undefined && value !== null && value !== "") url.searchParams.set(key, String(value));
    }
    const headers = { Authorization: `Bearer ${this.#token}` };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const deadline = AbortSignal.timeout(timeoutMs);
    let response;
    try {
      response = await fetch(url, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: signal ? AbortSignal.any([signal, deadline]) : deadline,
        cache: "no-store",
        credentials: "omit",
      });
    } catch (error) {
      if (signal?.aborted) throw error; // superseded by the caller: not an error to show
      if (deadline.aborted) throw new ApiError("The server did not answer in time.");
      throw new ApiError("Cannot reach the Shadowdesk server.");
    }
    if (!response.ok) throw await errorFrom(response);
    return response;
  }

  async json(method, path, options) {
    const response = await this.request(method, path, options);
    return response.json();
  }

  search(params, signal) {
    return this.json("GET", "/v1/recall/search", { params, signal });
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

  live(handlers) {
    return new LiveSocket("/v1/recall/live", this.#token, handlers);
  }

  assist(handlers) {
    return new LiveSocket("/v1/assist/live", this.#token, handlers);
  }
}

// A live websocket, reconnecting with backoff. Browsers cannot set headers on a websocket, so the
// token goes in the query of these URLs only.
export class LiveSocket {
  #path;
  #token;
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
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const url = `${scheme}//${location.host}${this.#path}?token=${encodeURIComponent(this.#token)}`;
    const socket = new WebSocket(url);
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
    socket.addEventListener("close", () => {
      if (this.#socket !== socket) return;
      this.#socket = null;
      this.#handlers.onState("closed");
      if (this.#closed) return;
      // Jittered exponential backoff, so many sidebars do not reconnect in lockstep after a restart.
      const wait = this.#delay * (0.5 + Math.random() / 2);
      this.#delay = Math.min(this.#delay * 2, RECONNECT_MAX_MS);
      this.#timer = setTimeout(() => this.#connect(), wait);
    });
  }
}

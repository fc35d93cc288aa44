// What the user experiences on one connection to the desktop ({rfb, socket, sessionId, api}): the
// round trip, frame rate, frame delay, input-to-display latency and bandwidth, measured on the RFB
// websocket this page opened itself, shown in a small readout and reported every 5 s to the cloud
// (POST /v1/desktop/{session}/experience, numbers only). docs/diagnostics.md defines each figure.
//
// The hook is the socket, not noVNC's internals: noVNC (1.3.0) flushes each client message in its own
// send(), and without continuous updates (x11vnc has none) it asks for the next framebuffer update the
// moment it has drawn the previous one (rfb.js _normalMsg: fbUpdateRequest right after a completed
// _framebufferUpdate). So every incremental FramebufferUpdateRequest the page sends marks one update
// drawn, and the request before it is when that update was asked for. Keys and clicks are the
// KeyEvent and PointerEvent messages in the same sends.

import { Session } from "/sidebar/static/api.js";
import { currentLang } from "./strings.js";

const SUBPROTOCOL = "shadowdesk.v1";
const REPORT_MS = 5_000;
const ECHO_MS = 1_000;
const ECHO_RETRY_MS = 5_000;
// An input with no update for this long changed nothing on screen (a modifier, a click on nothing).
const INPUT_GIVE_UP_MS = 5_000;
const MAX_WINDOW_S = 60;

// RFB client-to-server message types (RFC 6143 7.5) and their lengths, to walk a send.
const SET_PIXEL_FORMAT = 0;
const FB_UPDATE_REQUEST = 3;
const KEY_EVENT = 4;
const POINTER_EVENT = 5;
const FIXED_LENGTH = { 0: 20, 3: 10, 4: 8, 5: 6, 150: 10, 250: 4, 255: 12 };
// Shift, Control, Caps Lock, Meta, Alt, Super, Hyper (left and right): they change nothing on screen.
const MODIFIERS = [0xffe1, 0xffee];

const LABELS = {
  en: { name: "Connection", rtt: "round trip", fps: "fps", input: "input", down: "down", delay: "frame delay", up: "up" },
  zh: { name: "连接", rtt: "往返", fps: "帧/秒", input: "输入", down: "下行", delay: "帧延迟", up: "上行" },
};

let current = null; // the measuring of the connection now open

export function startExperience({ rfb, socket, sessionId, api }) {
  current?.stop();
  current = new Experience(rfb, socket, sessionId, api);
}

function median(values) {
  if (!values.length) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

function bytesOf(data) {
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return null;
}

function sizeOf(data) {
  if (typeof data === "string") return data.length;
  return data.byteLength ?? data.size ?? 0;
}

// The length of the client message at ``at`` in ``bytes``, or 0 when it cannot be told.
function messageLength(bytes, at) {
  const type = bytes[at];
  if (type in FIXED_LENGTH) return FIXED_LENGTH[type];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (type === 2 && at + 4 <= bytes.length) return 4 + 4 * view.getUint16(at + 2); // SetEncodings
  if (type === 6 && at + 8 <= bytes.length) return 8 + view.getUint32(at + 4); // ClientCutText
  return 0;
}

class Experience {
  #rfb;
  #socket;
  #path;
  #api;
  #timers = [];
  #stopped = false;
  #normal = false; // past the handshake: the client's first SetPixelFormat was sent
  #button = 0;
  #requestedAt = null; // when the update in flight was asked for
  #inputs = []; // times of inputs not yet shown
  #echo = null;
  #echoSeq = 0;
  #echoSent = new Map();
  #lastRtt = null;
  #window;

  constructor(rfb, socket, sessionId, api) {
    this.#rfb = rfb;
    this.#socket = socket;
    this.#path = `/v1/desktop/${encodeURIComponent(sessionId)}/experience`;
    this.#api = api;
    this.#window = this.#newWindow();
    socket.addEventListener("message", (event) => {
      this.#window.down += sizeOf(event.data);
    });
    // Wrapping this page's own socket: noVNC hands every message it sends to it.
    const send = socket.send.bind(socket);
    socket.send = (data) => {
      this.#sent(data);
      return send(data);
    };
    socket.addEventListener("close", () => this.stop());
    this.#timers.push(setInterval(() => this.#report(), REPORT_MS));
    this.#timers.push(setInterval(() => this.#ping(), ECHO_MS));
    this.#openEcho();
  }

  stop() {
    if (this.#stopped) return;
    this.#stopped = true;
    for (const timer of this.#timers) clearInterval(timer);
    this.#echo?.close();
    readout().hidden = true;
  }

  #newWindow() {
    return { start: performance.now(), down: 0, up: 0, frames: 0, inputs: 0, delays: [], latencies: [], rtts: [] };
  }

  #sent(data) {
    const now = performance.now();
    this.#window.up += sizeOf(data);
    const bytes = bytesOf(data);
    if (!bytes) return;
    for (let at = 0; at < bytes.length; ) {
      const type = bytes[at];
      if (!this.#normal) {
        if (type !== SET_PIXEL_FORMAT || bytes.length - at !== FIXED_LENGTH[SET_PIXEL_FORMAT]) return;
        this.#normal = true;
      }
      const length = messageLength(bytes, at);
      if (!length || at + length > bytes.length) return;
      if (type === FB_UPDATE_REQUEST) this.#requested(now, bytes[at + 1] === 1);
      else if (type === KEY_EVENT) this.#key(now, bytes, at);
      else if (type === POINTER_EVENT) this.#pointer(now, bytes[at + 1]);
      at += length;
    }
  }

  // An incremental request follows the update just drawn (see the top of this file).
  #requested(now, incremental) {
    if (incremental && this.#requestedAt !== null) this.#drawn(now, this.#requestedAt);
    this.#requestedAt = now;
  }

  #drawn(now, askedAt) {
    const w = this.#window;
    w.frames += 1;
    w.delays.push(now - askedAt);
    // An update drawn sooner than a round trip after an input was on its way before the input
    // reached the desktop: it cannot show it. The smallest recent echo is that round trip.
    const floor = Math.min(...w.rtts, this.#lastRtt ?? Infinity);
    const roundTrip = Number.isFinite(floor) ? floor : 0;
    this.#inputs = this.#inputs.filter((at) => {
      if (now - at > INPUT_GIVE_UP_MS) return false;
      if (now - at < roundTrip) return true;
      w.latencies.push(now - at);
      return false;
    });
  }

  #key(now, bytes, at) {
    const down = bytes[at + 1] === 1;
    const keysym = new DataView(bytes.buffer, bytes.byteOffset + at + 4, 4).getUint32(0);
    if (!down || (keysym >= MODIFIERS[0] && keysym <= MODIFIERS[1])) return;
    this.#input(now);
  }

  // Presses, releases and the wheel change what is shown; a bare move draws only the local cursor.
  #pointer(now, mask) {
    const changed = mask !== this.#button;
    this.#button = mask;
    if (changed) this.#input(now);
  }

  #input(now) {
    this.#window.inputs += 1;
    this.#inputs.push(now);
  }

  #openEcho() {
    if (this.#stopped) return;
    const token = Session.restore()?.token; // this tab's sign-in, kept fresh by the page
    if (!token) return;
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const echo = new WebSocket(`${scheme}//${location.host}/v1/desktop/echo`, [SUBPROTOCOL, `bearer.${token}`]);
    this.#echo = echo;
    this.#echoSent.clear();
    echo.addEventListener("message", (event) => {
      const sentAt = this.#echoSent.get(event.data);
      if (sentAt === undefined) return;
      this.#echoSent.delete(event.data);
      const rtt = performance.now() - sentAt;
      this.#window.rtts.push(rtt);
      this.#lastRtt = rtt;
    });
    echo.addEventListener("close", () => {
      if (this.#echo !== echo || this.#stopped) return;
      this.#echo = null;
      this.#timers.push(setTimeout(() => this.#openEcho(), ECHO_RETRY_MS));
    });
  }

  #ping() {
    if (this.#echo?.readyState !== WebSocket.OPEN) return;
    // One outstanding ping at most: an echo stuck behind a stalled link is not sent again and again.
    if (this.#echoSent.size) return;
    const key = String(++this.#echoSeq);
    this.#echoSent.set(key, performance.now());
    this.#echo.send(key);
  }

  async #report() {
    const w = this.#window;
    const now = performance.now();
    const windowS = Math.min((now - w.start) / 1000, MAX_WINDOW_S);
    this.#window = this.#newWindow();
    if (this.#socket.readyState !== WebSocket.OPEN || windowS <= 0) return;
    const round = (value) => (value === null ? null : Math.round(value * 10) / 10);
    const report = {
      window_s: round(windowS),
      fps: round(w.frames / windowS),
      bytes_down_per_s: Math.round(w.down / windowS),
      bytes_up_per_s: Math.round(w.up / windowS),
      inputs: w.inputs,
      rtt_ms: round(median(w.rtts)),
      frame_delay_ms: round(median(w.delays)),
      input_latency_ms: round(median(w.latencies)),
    };
    show(report);
    try {
      await this.#api.request("POST", this.#path, { body: report });
    } catch {
      // A lost report is only a gap in ops' chart; the next one comes in 5 s.
    }
  }
}

// The readout beside the connection badge, made here so the page's markup stays the page's.
function readout() {
  let element = document.getElementById("desk-experience");
  if (!element) {
    element = document.createElement("span");
    element.id = "desk-experience";
    element.dataset.testid = "desk-experience";
    element.hidden = true;
    Object.assign(element.style, { fontSize: "0.8rem", color: "var(--muted)", whiteSpace: "nowrap" });
    const name = document.createElement("span");
    name.className = "visually-hidden"; // the page's class: read out, not shown
    element.append(name, document.createElement("span"));
    const badge = document.getElementById("desk-status");
    if (badge) badge.after(element);
    else document.body.append(element);
  }
  return element;
}

function show(report) {
  const labels = LABELS[currentLang()] ?? LABELS.en;
  const ms = (value) => (value === null ? "–" : `${Math.round(value)} ms`);
  const kib = (value) => `${Math.round(value / 1024)} KiB/s`;
  const element = readout();
  const [name, figures] = element.children;
  name.textContent = `${labels.name}: `;
  figures.textContent = [
    `${labels.rtt} ${ms(report.rtt_ms)}`,
    `${Math.round(report.fps)} ${labels.fps}`,
    `${labels.input} ${ms(report.input_latency_ms)}`,
    `${labels.down} ${kib(report.bytes_down_per_s)}`,
  ].join(" · ");
  // The rest of the figures on hover; the line in the bar stays short.
  element.title = `${labels.delay} ${ms(report.frame_delay_ms)} · ${labels.up} ${kib(report.bytes_up_per_s)}`;
  element.lang = currentLang();
  element.hidden = false;
}

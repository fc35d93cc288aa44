// Notices about this user's own desktops (ops diagnostics, 端云协同): what is wrong now, in plain words,
// and the fix the user may apply themselves ("Close chromium, which uses 94 % of memory"). Polled from
// /v1/me/health while the page is visible; a fix is confirmed first, then applied through the API, which
// answers once the desktop reported the result.

import { $, el } from "/sidebar/static/dom.js";
import { t } from "/sidebar/static/i18n.js";

const POLL_MS = 5_000;

export class HealthNotices {
  constructor(api, { confirm, status, error }) {
    this.api = api;
    this.ui = { confirm, status, error };
    this.timer = null;
    this.shown = "";
  }

  start() {
    this.refresh();
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden) this.refresh();
    });
  }

  stop() {
    clearTimeout(this.timer);
    this.timer = null;
    $("health-notices").replaceChildren();
    $("health-notices").hidden = true;
  }

  async refresh() {
    clearTimeout(this.timer);
    try {
      if (!document.hidden) this.render((await this.api.health()).notices);
    } catch {
      // Diagnostics may be off on this server (503) or the network down: nothing to show, try again.
    }
    this.timer = setTimeout(() => this.refresh(), POLL_MS);
  }

  render(notices) {
    const key = JSON.stringify(notices.map((n) => [n.incident_id, n.message, n.fixes.map((f) => f.label)]));
    if (key === this.shown) return; // unchanged: keep focus and the reader's place
    this.shown = key;
    const list = $("health-notices");
    list.replaceChildren(...notices.map((notice) => this.#notice(notice)));
    list.hidden = notices.length === 0;
  }

  #notice(notice) {
    const fixes = notice.fixes.map((fix) =>
      el(
        "button",
        { type: "button", class: "fix", dataset: { testid: "health-fix", fix: fix.fix_id } },
        fix.label,
      ),
    );
    const item = el(
      "li",
      { class: `health-notice health-${notice.severity}`, dataset: { testid: "health-notice" } },
      el("strong", { class: "health-title" }, notice.title),
      el("p", { class: "health-message" }, notice.message),
      ...fixes,
    );
    for (const [index, fix] of notice.fixes.entries()) {
      fixes[index].addEventListener("click", () => this.#apply(notice, fix, fixes[index]));
      if (!this.api.can("manage")) fixes[index].disabled = true;
    }
    return item;
  }

  async #apply(notice, fix, button) {
    if (!(await this.ui.confirm(t("health.confirm", { label: fix.label }), t("health.fixOk")))) return;
    button.disabled = true;
    this.ui.status(t("health.fixing"));
    try {
      const result = await this.api.applyHealthFix(notice.incident_id, fix.fix_id);
      if (result.status === "succeeded") this.ui.status(t("health.done"));
      else this.ui.error(new Error(t("health.failed", { error: result.error || result.status })));
    } catch (error) {
      this.ui.error(error);
    } finally {
      button.disabled = false;
      this.shown = "";
      this.refresh();
    }
  }
}

// Building the page's nodes. Text from the API (screen text, macro documents) only ever becomes text
// nodes and attribute values here, never markup.

import { dateFormat } from "/sidebar/static/i18n.js";

export const $ = (id) => document.getElementById(id);

// A DOM element with attributes and children (strings become text nodes).
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  node.append(...children.filter((c) => c !== undefined && c !== null));
  return node;
}

// A time of today as hours and minutes, any other with its date, in the sidebar's language.
export function formatTime(iso) {
  const date = new Date(iso);
  const today = new Date().toDateString() === date.toDateString();
  return dateFormat(today ? { hour: "2-digit", minute: "2-digit" } : { dateStyle: "medium", timeStyle: "short" })
    .format(date);
}

// The page's words in English and Chinese. The choice follows the browser until the user switches; it is
// kept in localStorage under the key the sidebar uses too, so both speak the same language.

export const LANG_KEY = "shadowdesk.lang";

const STRINGS = {
  en: {
    desktop: "Desktop",
    companion: "Companion",
    companionPanel: "Shadowdesk companion",
    sidebarTitle: "Shadowdesk sidebar",
    remoteDesktop: "Remote desktop",
    typeLabel: "Type into the desktop",
    typePlaceholder: "Type into the desktop (any language)",
    type: "Type",
    clipboard: "Clipboard",
    clipboardText: "Clipboard text",
    clipFrom: "Copy from desktop",
    clipTo: "Send to desktop",
    switchTo: "Switch to Chinese",
    connecting: "Connecting…",
    connected: "Connected",
    reconnecting: "Reconnecting…",
    offline: "Offline",
    signedOut: "Signed out: open Shadowdesk from your client again.",
    noDesktop: "None of your sessions has a desktop to show.",
    typing: "Typing…",
    typed: "Typed.",
    copying: "Reading the desktop's clipboard…",
    copied: "Copied from the desktop.",
    sending: "Setting the desktop's clipboard…",
    sent: "The desktop's clipboard is set: paste there with Ctrl+V.",
    nothingToSend: "Nothing to send: write or paste text here first.",
    failed: "Failed: {message}",
    refused: "The desktop cannot be shown: {message}",
  },
  zh: {
    desktop: "桌面",
    companion: "助手",
    companionPanel: "Shadowdesk 助手",
    sidebarTitle: "Shadowdesk 侧边栏",
    remoteDesktop: "远程桌面",
    typeLabel: "输入到桌面",
    typePlaceholder: "输入到桌面（任何语言）",
    type: "输入",
    clipboard: "剪贴板",
    clipboardText: "剪贴板文本",
    clipFrom: "从桌面复制",
    clipTo: "发送到桌面",
    switchTo: "切换到英文",
    connecting: "正在连接…",
    connected: "已连接",
    reconnecting: "正在重新连接…",
    offline: "离线",
    signedOut: "已退出登录：请从客户端重新打开 Shadowdesk。",
    noDesktop: "您的会话中没有可显示的桌面。",
    typing: "正在输入…",
    typed: "已输入。",
    copying: "正在读取桌面剪贴板…",
    copied: "已从桌面复制。",
    sending: "正在设置桌面剪贴板…",
    sent: "桌面剪贴板已设置：在桌面中按 Ctrl+V 粘贴。",
    nothingToSend: "没有要发送的内容：请先在此输入或粘贴文本。",
    failed: "失败：{message}",
    refused: "无法显示桌面：{message}",
  },
};

function stored() {
  try {
    return localStorage.getItem(LANG_KEY);
  } catch {
    return null; // storage off: follow the browser
  }
}

export function currentLang() {
  const choice = stored();
  if (choice === "en" || choice === "zh") return choice;
  return (navigator.language || "en").toLowerCase().startsWith("zh") ? "zh" : "en";
}

export function chooseLang(lang) {
  try {
    localStorage.setItem(LANG_KEY, lang);
  } catch {
    // storage off: the choice lasts for this page only
  }
}

// The word for ``key`` in ``lang``, with {name} placeholders filled from ``values``.
export function t(key, values = {}, lang = currentLang()) {
  const text = STRINGS[lang][key] ?? STRINGS.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => String(values[name] ?? ""));
}

// Put ``lang``'s words into every element marked with data-i18n (text), data-i18n-aria (aria-label),
// data-i18n-placeholder and data-i18n-title.
export function applyLang(root, lang) {
  root.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  for (const [attribute, apply] of [
    ["data-i18n", (el, text) => (el.textContent = text)],
    ["data-i18n-aria", (el, text) => el.setAttribute("aria-label", text)],
    ["data-i18n-placeholder", (el, text) => el.setAttribute("placeholder", text)],
    ["data-i18n-title", (el, text) => el.setAttribute("title", text)],
  ]) {
    for (const el of root.querySelectorAll(`[${attribute}]`)) apply(el, t(el.getAttribute(attribute), {}, lang));
  }
}

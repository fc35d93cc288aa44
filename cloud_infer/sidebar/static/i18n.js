// The sidebar's words in English and Chinese. The language follows the browser (zh* is Chinese,
// anything else English) until the user picks one; the choice is kept in localStorage under
// LANG_KEY, which the thin-client page (/desk) shares, so a switch there reaches a sidebar in its
// iframe through the `storage` event. Only the page's own words are translated: screen text, titles
// and the server's messages are the user's data and stay as they are.
//
// Markup names its words with data-i18n="key" (the text) and data-i18n-attr="attr:key;attr:key"
// (placeholders, labels); setText() marks nodes built in code the same way, so a switch re-renders them.

const LANG_KEY = "shadowdesk.lang";
export const LANGS = ["en", "zh"];

const plural = (n, one, many) => (Number(n) === 1 ? one : many);

const MESSAGES = {
  en: {
    "page.title": "Shadowdesk Recall",
    "header.heading": "Recall",
    "header.paused": "Capture paused",
    "lang.other": "中文",
    "lang.otherCode": "zh",
    "lang.switch": "切换到中文 (Switch to Chinese)",
    "live.open": "Live",
    "live.connecting": "Connecting…",
    "live.closed": "Offline",
    "recording.text": "Recording",
    "recording.stop": "Stop recording",
    "recording.actions": ({ n }) => plural(n, "1 action", `${n} actions`),
    "recording.on": "Recording on {session} · {actions}",
    "recording.stopped": "The recording stopped: {error}",
    "recording.noAgent": "the agent did not record",
    "recording.stopping": "Stopping and compiling the macro…",
    "health.label": "Desktop health",
    "health.fixOk": "Fix it",
    "health.confirm": "{label}?",
    "health.fixing": "Fixing…",
    "health.done": "Done. The notice goes away once your desktop is well.",
    "health.failed": "The fix did not work: {error}",
    "tabs.label": "Sidebar sections",
    "tabs.search": "Search",
    "tabs.ask": "Ask",
    "tabs.assist": "Assist",
    "tabs.privacy": "Privacy",
    "tabs.macros": "Macros",
    "search.label": "Search what you saw",
    "search.placeholder": "Search what you saw… 例如：上周的报销单",
    "search.submit": "Search",
    "filters.summary": "Filters",
    "filters.app": "App",
    "filters.title": "Title",
    "filters.url": "URL",
    "filters.start": "From",
    "filters.end": "To",
    "results.refresh": "New moments arrived — refresh",
    "results.recent": "Recent moments",
    "results.results": "Results",
    "results.empty": "No moments found.",
    "results.intro":
      "Nothing captured yet. Moments appear here as you work; search the text of everything you have seen, in any language.",
    "results.untitled": "(untitled)",
    "query.understood": "Understood: {phrases}",
    "query.now": "now",
    "query.also": "Also searched: {words}",
    "dates.label": "Read the date as",
    "dates.both": "Seen or about then",
    "dates.seen": "Seen then",
    "dates.about": "About then",
    "try.toggle": "Try this",
    "try.heading": "Try this",
    "try.intro": "Searches that find something in your own history:",
    "try.none": "Nothing to suggest yet: work a little, then come back.",
    "try.close": "Hide suggestions",
    "try.search": "Search",
    "try.ask": "Ask",
    "try.hits": ({ n }) => plural(n, "1 moment", `${n} moments`),
    "try.reason.recent": "recent",
    "try.reason.cross_lingual": "other language",
    "try.reason.document_id": "id on screen",
    "try.reason.question": "question",
    "moment.back": "← Back to results",
    "moment.text": "Text in this moment",
    "moment.exclude": "Never capture this app",
    "moment.forget": "Forget this moment",
    "moment.frameAlt": "Screen at {time}",
    "moment.matches": "Matches are outlined.",
    "moment.forgetConfirm": "Forget this moment of {title}? Its text and screenshots are deleted for good.",
    "moment.forgetOk": "Forget",
    "moment.forgotten": "Moment forgotten ({rows} text rows, {files} files).",
    "moment.alreadyExcluded": "{app} is already never captured.",
    "moment.excluded": "{app} will not be captured from now on. Past moments stay until you erase them.",
    "ask.label": "Ask about your history",
    "ask.placeholder": "What was the total of the invoice I saw this morning?",
    "ask.submit": "Ask",
    "ask.stop": "Stop",
    "ask.sources": "Sources",
    "ask.failed": "The answer failed.",
    "net.notConnected": "Not connected to the server; try again in a moment.",
    "assist.connecting": "Connecting…",
    "assist.noWindow": "No current window",
    "assist.untitled": "(untitled)",
    "assist.textLabel": "Text to work on",
    "assist.textPlaceholder": "Select or copy text in your window, or paste it here",
    "assist.actions": "Actions on the text",
    "assist.summarize": "Summarise",
    "assist.translate": "Translate",
    "assist.polish": "Polish",
    "assist.explain": "Explain error",
    "assist.questionLabel": "Question about the text",
    "assist.questionPlaceholder": "Ask about it…",
    "assist.ask": "Ask",
    "assist.stop": "Stop",
    "assist.hintWindow": "Empty: works on the visible text of this window.",
    "assist.hintNothing": "Nothing seen on your desktop lately: type or paste the text to work on.",
    "assist.lost": "The connection was lost; run it again.",
    "assist.rateLimited": "Too many requests: try again in {s} s.",
    "assist.failed": "The assistant failed; try again.",
    "privacy.capture": "Capture",
    "privacy.pause": "Pause capture (only system metrics are kept)",
    "privacy.apps": "Apps never captured (one per line)",
    "privacy.titles": "Private window titles (regular expressions, one per line)",
    "privacy.retention": "Keep history for (days; empty keeps it forever)",
    "privacy.save": "Save privacy settings",
    "privacy.saved": "Privacy settings saved.",
    "privacy.paused": "Capture paused.",
    "privacy.resumed": "Capture resumed.",
    "privacy.resumeOk": "Resume capture",
    "privacy.saveOk": "Save",
    "privacy.readOnly":
      "This sign-in is read-only: erasing, resuming capture, removing exclusions and changing retention need a sidebar opened from the Shadowdesk client with full access.",
    "reduce.resume": "Capture resumes: your screen is recorded again.",
    "reduce.apps": "{apps} will be captured again.",
    "reduce.titles": "Windows titled like {patterns} will be captured again.",
    "reduce.retention": "History is kept {next} instead of {old}{loss}.",
    "reduce.forever": "forever",
    "reduce.days": "{n} days",
    "reduce.loss": ": anything older is deleted for good",
    "erase.heading": "Erase",
    "erase.start": "From",
    "erase.end": "To",
    "erase.range": "Erase this time range",
    "erase.all": "Erase everything",
    "erase.order": "Choose a start before the end.",
    "erase.confirmRange": "Erase everything captured from {range}? This cannot be undone.",
    "erase.ok": "Erase",
    "erase.confirmAll": "Erase your entire history: every moment, screenshot and index? This cannot be undone.",
    "erase.done": "Erased {rows} text rows and {files} files.",
    "export.heading": "Export",
    "export.button": "Export my history (.zip)",
    "export.preparing": "Preparing your export…",
    "export.saved": "Export saved as {file}.",
    "error.unexpected": "Unexpected error: {error}",
    "signin.out": "Signed out: open the sidebar from the Shadowdesk client again.",
    "signin.failed": "Could not sign in ({error}). Open the sidebar from the Shadowdesk client again.",
    "confirm.cancel": "Cancel",
    "confirm.ok": "Confirm",
    "api.timeout": "The server did not answer in time.",
    "api.unreachable": "Cannot reach the Shadowdesk server.",
    "macros.desktop": "Desktop",
    "macros.refresh": "Refresh the list of desktops",
    "macros.noDesktop": "No desktop of yours has connected yet: start the Shadowdesk agent in your desktop.",
    "macros.recordName": "Name of the new macro (optional)",
    "macros.recordPlaceholder": "e.g. 报销 expense claim",
    "macros.record": "Record",
    "macros.recordHint": "Record, then do the task once in your desktop; Stop turns it into a macro.",
    "macros.yours": "Your macros",
    "macros.none": "No macros yet: record one.",
    "macros.back": "← All macros",
    "macros.tabs": "Macro",
    "macros.readOnly":
      "This sign-in is read-only: recording, saving, deleting and running macros need a sidebar opened from the Shadowdesk client with full access.",
    "macros.connected": "{id} (connected)",
    "macros.offline": "{id} (offline)",
    "macros.notSeen": "{id} (not seen yet)",
    "macros.chooseDesktop": "Choose the desktop to record on first.",
    "macros.recordingOn": "Recording on {session}: do the task in your desktop, then press Stop.",
    "macros.saved": "Saved the new macro “{name}”.",
    "macros.version": "version {n}",
    "macros.meta": ({ version, n }) => `Version ${version} · ${n} version${n === 1 ? "" : "s"} saved`,
    "mtab.edit": "Edit",
    "mtab.run": "Run",
    "mtab.history": "History",
    "macro.steps": "Steps",
    "macro.params": "Parameters",
    "macro.noParams": "This macro asks for nothing when it runs.",
    "macro.locked": "The document was edited by hand: save it or revert it to use the form again.",
    "macro.yaml": "Document (YAML)",
    "macro.yamlLabel": "Macro document (YAML)",
    "macro.revert": "Revert to the saved version",
    "macro.save": "Save as a new version",
    "macro.delete": "Delete macro",
    "macro.savedVersion": "Saved version {version} of “{name}”.",
    "macro.deleteConfirm": ({ name, n }) =>
      `Delete the macro “${name}” and its ${n} version${n === 1 ? "" : "s"}? This cannot be undone.`,
    "macro.deleteOk": "Delete",
    "macro.deleted": "Deleted “{name}”.",
    "macro.document": "Document",
    "macro.notSaved": ({ n }) => `Not saved: ${n} problem${n === 1 ? "" : "s"} in the document.`,
    "step.number": "Step {n}",
    "step.thumbAlt": "Screen when step {n} was recorded",
    "step.sensitive": "Asks you first",
    "step.loop": "For each row of {over} ({pattern})",
    "step.loopHead": "For each row of {over}",
    "step.in": "in {window}",
    "step.keysIn": "{keys} in {what}",
    "step.from": ", from {input}",
    "step.keptAs": ", kept as {name}",
    "step.param": "the parameter {name}",
    "step.binding": "{name} (read earlier)",
    "step.item": "the row's {name}",
    "action.focus": "Switch to",
    "action.launch": "Open",
    "action.click": "Click",
    "action.type": "Type into",
    "action.select": "Choose in",
    "action.press": "Press",
    "action.read": "Read",
    "action.find_text": "Find text in",
    "action.set_clipboard": "Copy",
    "action.wait": "Wait for",
    "param.legend": "Parameter {n}",
    "param.name": "Name",
    "param.type": "Type",
    "param.label": "Label",
    "param.default": "Default",
    "param.choices": "Choices (comma-separated)",
    "param.required": "Required",
    "param.secretPlaceholder": "never stored: asked at each run",
    "run.start": "Run on this desktop",
    "run.heading": "Run",
    "run.stepsLabel": "Steps of the run",
    "run.cancel": "Cancel run",
    "run.historyLabel": "Runs of this macro",
    "run.notYet": "Not run yet.",
    "run.datePlaceholder": "as the form expects it, e.g. 2026-03-01",
    "run.secretType": "secret, never stored",
    "run.chooseDesktop": "Choose the desktop to run it on first.",
    "run.started": "Started “{name}” on {session}.",
    "run.cancelConfirm": "Cancel the run of “{name}”? A step in progress is stopped; what was done stays done.",
    "run.headingOf": "Run of “{name}” · {time}",
    "run.skipped": " (skipped: {steps})",
    "run.finalChecks": "Final checks",
    "run.row": " (row {n})",
    "run.stepRow": " · row {n}",
    "run.confirmQuestion": "Confirm “{step}”{row} before it acts: {reason}",
    "run.haltQuestion": "“{step}”{row} stopped: {reason}. What now?",
    "run.foundBy": "found by {how}",
    "run.try": "try {n}",
    "run.check": "{mark} {kind} via {via}{seen}",
    "run.checkSeen": " (expected {expected}, read {actual})",
    "run.nothing": "nothing",
    "run.frameBefore": "Screen before “{name}”",
    "run.frameAfter": "Screen after “{name}”",
    "status.running": "Running…",
    "status.waiting": "Waiting for you",
    "status.complete": "Complete: every step and check held",
    "status.failed": "Failed",
    "status.aborted": "Aborted",
    "status.cancelled": "Cancelled",
    "step.pending": "Pending",
    "step.running": "Running…",
    "step.waiting": "Waiting for you",
    "step.ok": "Done",
    "step.failed": "Failed",
    "step.skipped": "Skipped",
    "step.taken_over": "Done by you",
    "step.refused_by_user": "Rejected",
    "answer.confirm": "Confirm",
    "answer.reject": "Reject",
    "answer.retry": "Retry",
    "answer.skip": "Skip",
    "answer.take_over": "Take over",
    "answer.abort": "Abort run",
    "answerHint.take_over": "Do this step yourself in the desktop; its checks are then read back and the run goes on.",
    "answerHint.skip": "Go on without this step: the run can no longer end complete.",
  },
  zh: {
    "page.title": "Shadowdesk 回忆",
    "header.heading": "回忆",
    "header.paused": "已暂停记录",
    "lang.other": "English",
    "lang.otherCode": "en",
    "lang.switch": "Switch to English (切换到英文)",
    "live.open": "实时",
    "live.connecting": "正在连接…",
    "live.closed": "离线",
    "recording.text": "正在录制",
    "recording.stop": "停止录制",
    "recording.actions": "{n} 个操作",
    "recording.on": "正在 {session} 上录制 · {actions}",
    "recording.stopped": "录制已停止：{error}",
    "recording.noAgent": "代理没有录制",
    "recording.stopping": "正在停止并生成宏…",
    "health.label": "桌面健康",
    "health.fixOk": "修复",
    "health.confirm": "{label}？",
    "health.fixing": "正在修复…",
    "health.done": "已完成。桌面恢复正常后，此提示会消失。",
    "health.failed": "修复没有成功：{error}",
    "tabs.label": "侧栏分区",
    "tabs.search": "搜索",
    "tabs.ask": "提问",
    "tabs.assist": "助手",
    "tabs.privacy": "隐私",
    "tabs.macros": "宏",
    "search.label": "搜索你看过的内容",
    "search.placeholder": "搜索你看过的内容… 例如：上周的报销单",
    "search.submit": "搜索",
    "filters.summary": "筛选",
    "filters.app": "应用",
    "filters.title": "标题",
    "filters.url": "网址",
    "filters.start": "从",
    "filters.end": "到",
    "results.refresh": "有新的片段 — 刷新",
    "results.recent": "最近的片段",
    "results.results": "结果",
    "results.empty": "没有找到片段。",
    "results.intro": "还没有记录。你工作时，片段会出现在这里；可以用任何语言搜索你看过的所有文字。",
    "results.untitled": "（无标题）",
    "query.understood": "理解为：{phrases}",
    "query.now": "现在",
    "query.also": "还搜索了：{words}",
    "dates.label": "日期理解为",
    "dates.both": "当时看到或与其相关",
    "dates.seen": "当时看到",
    "dates.about": "与该日期相关",
    "try.toggle": "试试这些",
    "try.heading": "试试这些",
    "try.intro": "这些搜索能在你自己的历史记录中找到内容：",
    "try.none": "暂时没有建议：先工作一会儿再来看看。",
    "try.close": "隐藏建议",
    "try.search": "搜索",
    "try.ask": "提问",
    "try.hits": "{n} 个片段",
    "try.reason.recent": "最近",
    "try.reason.cross_lingual": "另一种语言",
    "try.reason.document_id": "屏幕上的编号",
    "try.reason.question": "问题",
    "moment.back": "← 返回结果",
    "moment.text": "此片段中的文字",
    "moment.exclude": "不再记录此应用",
    "moment.forget": "忘记此片段",
    "moment.frameAlt": "{time} 的屏幕",
    "moment.matches": "匹配处已框出。",
    "moment.forgetConfirm": "忘记“{title}”的这个片段？它的文字和截图将被永久删除。",
    "moment.forgetOk": "忘记",
    "moment.forgotten": "片段已忘记（{rows} 行文字，{files} 个文件）。",
    "moment.alreadyExcluded": "{app} 已设为从不记录。",
    "moment.excluded": "从现在起不再记录 {app}。已有的片段会保留，直到你删除它们。",
    "ask.label": "询问你的历史记录",
    "ask.placeholder": "我今天上午看到的那张发票总额是多少？",
    "ask.submit": "提问",
    "ask.stop": "停止",
    "ask.sources": "来源",
    "ask.failed": "回答失败。",
    "net.notConnected": "未连接到服务器，请稍后再试。",
    "assist.connecting": "正在连接…",
    "assist.noWindow": "当前没有窗口",
    "assist.untitled": "（无标题）",
    "assist.textLabel": "要处理的文字",
    "assist.textPlaceholder": "在窗口中选择或复制文字，或粘贴到这里",
    "assist.actions": "对文字的操作",
    "assist.summarize": "摘要",
    "assist.translate": "翻译",
    "assist.polish": "润色",
    "assist.explain": "解释错误",
    "assist.questionLabel": "关于这段文字的问题",
    "assist.questionPlaceholder": "就此提问…",
    "assist.ask": "提问",
    "assist.stop": "停止",
    "assist.hintWindow": "留空：处理此窗口中可见的文字。",
    "assist.hintNothing": "最近没有在桌面上看到内容：请输入或粘贴要处理的文字。",
    "assist.lost": "连接已断开，请重新运行。",
    "assist.rateLimited": "请求过多：请在 {s} 秒后重试。",
    "assist.failed": "助手出错了，请重试。",
    "privacy.capture": "记录",
    "privacy.pause": "暂停记录（只保留系统指标）",
    "privacy.apps": "从不记录的应用（每行一个）",
    "privacy.titles": "私密窗口标题（正则表达式，每行一个）",
    "privacy.retention": "历史记录保留天数（留空则永久保留）",
    "privacy.save": "保存隐私设置",
    "privacy.saved": "隐私设置已保存。",
    "privacy.paused": "已暂停记录。",
    "privacy.resumed": "已恢复记录。",
    "privacy.resumeOk": "恢复记录",
    "privacy.saveOk": "保存",
    "privacy.readOnly":
      "此次登录为只读：删除、恢复记录、移除排除项和更改保留期限，需要从 Shadowdesk 客户端以完全权限打开侧栏。",
    "reduce.resume": "恢复记录：你的屏幕将再次被记录。",
    "reduce.apps": "{apps} 将再次被记录。",
    "reduce.titles": "标题类似 {patterns} 的窗口将再次被记录。",
    "reduce.retention": "历史记录将保留{next}，而不是{old}{loss}。",
    "reduce.forever": "永久",
    "reduce.days": " {n} 天",
    "reduce.loss": "：更早的内容将被永久删除",
    "erase.heading": "删除",
    "erase.start": "从",
    "erase.end": "到",
    "erase.range": "删除这段时间",
    "erase.all": "全部删除",
    "erase.order": "开始时间须早于结束时间。",
    "erase.confirmRange": "删除 {range} 期间记录的所有内容？此操作无法撤销。",
    "erase.ok": "删除",
    "erase.confirmAll": "删除你的全部历史记录：所有片段、截图和索引？此操作无法撤销。",
    "erase.done": "已删除 {rows} 行文字和 {files} 个文件。",
    "export.heading": "导出",
    "export.button": "导出我的历史记录（.zip）",
    "export.preparing": "正在准备导出…",
    "export.saved": "导出已保存为 {file}。",
    "error.unexpected": "意外错误：{error}",
    "signin.out": "已退出登录：请从 Shadowdesk 客户端重新打开侧栏。",
    "signin.failed": "无法登录（{error}）。请从 Shadowdesk 客户端重新打开侧栏。",
    "confirm.cancel": "取消",
    "confirm.ok": "确认",
    "api.timeout": "服务器没有及时响应。",
    "api.unreachable": "无法连接 Shadowdesk 服务器。",
    "macros.desktop": "桌面",
    "macros.refresh": "刷新桌面列表",
    "macros.noDesktop": "你的桌面还没有连接：请在桌面中启动 Shadowdesk 代理。",
    "macros.recordName": "新宏的名称（可选）",
    "macros.recordPlaceholder": "例如：报销 expense claim",
    "macros.record": "录制",
    "macros.recordHint": "点击录制，然后在桌面中完成一次任务；点击停止后即生成宏。",
    "macros.yours": "你的宏",
    "macros.none": "还没有宏：录制一个吧。",
    "macros.back": "← 所有宏",
    "macros.tabs": "宏",
    "macros.readOnly": "此次登录为只读：录制、保存、删除和运行宏，需要从 Shadowdesk 客户端以完全权限打开侧栏。",
    "macros.connected": "{id}（已连接）",
    "macros.offline": "{id}（离线）",
    "macros.notSeen": "{id}（尚未连接过）",
    "macros.chooseDesktop": "请先选择要录制的桌面。",
    "macros.recordingOn": "正在 {session} 上录制：请在桌面中完成任务，然后点击停止。",
    "macros.saved": "已保存新宏“{name}”。",
    "macros.version": "版本 {n}",
    "macros.meta": "版本 {version} · 已保存 {n} 个版本",
    "mtab.edit": "编辑",
    "mtab.run": "运行",
    "mtab.history": "历史",
    "macro.steps": "步骤",
    "macro.params": "参数",
    "macro.noParams": "此宏运行时不需要任何输入。",
    "macro.locked": "文档已被手动编辑：保存或还原后才能再使用表单。",
    "macro.yaml": "文档（YAML）",
    "macro.yamlLabel": "宏文档（YAML）",
    "macro.revert": "还原为已保存的版本",
    "macro.save": "另存为新版本",
    "macro.delete": "删除宏",
    "macro.savedVersion": "已保存“{name}”的版本 {version}。",
    "macro.deleteConfirm": "删除宏“{name}”及其 {n} 个版本？此操作无法撤销。",
    "macro.deleteOk": "删除",
    "macro.deleted": "已删除“{name}”。",
    "macro.document": "文档",
    "macro.notSaved": "未保存：文档中有 {n} 个问题。",
    "step.number": "步骤 {n}",
    "step.thumbAlt": "录制步骤 {n} 时的屏幕",
    "step.sensitive": "先征求你的同意",
    "step.loop": "对 {over} 的每一行（{pattern}）",
    "step.loopHead": "对 {over} 的每一行",
    "step.in": "于 {window}",
    "step.keysIn": "{keys}（{what}）",
    "step.from": "，来自{input}",
    "step.keptAs": "，保存为 {name}",
    "step.param": "参数 {name}",
    "step.binding": "{name}（之前读取）",
    "step.item": "该行的 {name}",
    "action.focus": "切换到",
    "action.launch": "打开",
    "action.click": "点击",
    "action.type": "输入到",
    "action.select": "选择",
    "action.press": "按下",
    "action.read": "读取",
    "action.find_text": "查找文字于",
    "action.set_clipboard": "复制",
    "action.wait": "等待",
    "param.legend": "参数 {n}",
    "param.name": "名称",
    "param.type": "类型",
    "param.label": "标签",
    "param.default": "默认值",
    "param.choices": "选项（用逗号分隔）",
    "param.required": "必填",
    "param.secretPlaceholder": "从不保存：每次运行时询问",
    "run.start": "在此桌面上运行",
    "run.heading": "运行",
    "run.stepsLabel": "运行的步骤",
    "run.cancel": "取消运行",
    "run.historyLabel": "此宏的运行记录",
    "run.notYet": "尚未运行。",
    "run.datePlaceholder": "按表单要求的格式，例如 2026-03-01",
    "run.secretType": "机密，从不保存",
    "run.chooseDesktop": "请先选择要运行的桌面。",
    "run.started": "已在 {session} 上开始运行“{name}”。",
    "run.cancelConfirm": "取消“{name}”的运行？正在进行的步骤会被停止；已完成的操作不会撤销。",
    "run.headingOf": "“{name}”的运行 · {time}",
    "run.skipped": "（已跳过：{steps}）",
    "run.finalChecks": "最终检查",
    "run.row": "（第 {n} 行）",
    "run.stepRow": " · 第 {n} 行",
    "run.confirmQuestion": "请确认“{step}”{row}后再执行：{reason}",
    "run.haltQuestion": "“{step}”{row}已停止：{reason}。接下来怎么做？",
    "run.foundBy": "通过 {how} 找到",
    "run.try": "第 {n} 次尝试",
    "run.check": "{mark} {kind}（通过 {via}）{seen}",
    "run.checkSeen": "（应为 {expected}，读到 {actual}）",
    "run.nothing": "无",
    "run.frameBefore": "“{name}”之前的屏幕",
    "run.frameAfter": "“{name}”之后的屏幕",
    "status.running": "正在运行…",
    "status.waiting": "等待你的操作",
    "status.complete": "完成：每个步骤和检查都通过了",
    "status.failed": "失败",
    "status.aborted": "已中止",
    "status.cancelled": "已取消",
    "step.pending": "等待中",
    "step.running": "正在运行…",
    "step.waiting": "等待你的操作",
    "step.ok": "完成",
    "step.failed": "失败",
    "step.skipped": "已跳过",
    "step.taken_over": "由你完成",
    "step.refused_by_user": "已拒绝",
    "answer.confirm": "确认",
    "answer.reject": "拒绝",
    "answer.retry": "重试",
    "answer.skip": "跳过",
    "answer.take_over": "我来做",
    "answer.abort": "中止运行",
    "answerHint.take_over": "在桌面中亲自完成这一步；之后会读回它的检查结果，运行继续。",
    "answerHint.skip": "跳过这一步继续：这次运行将无法以“完成”结束。",
  },
};

function normalize(tag) {
  return String(tag ?? "").toLowerCase().startsWith("zh") ? "zh" : "en";
}

function storedLang() {
  try {
    const value = localStorage.getItem(LANG_KEY);
    return LANGS.includes(value) ? value : "";
  } catch {
    return ""; // storage off: follow the browser
  }
}

let current = storedLang() || normalize(navigator.language);
const listeners = [];
const formats = new Map();

export function lang() {
  return current;
}

// The locale dates and numbers are written in: the browser's own English (en-GB keeps its day
// order), and Simplified Chinese.
export function locale() {
  if (current === "zh") return "zh-CN";
  return normalize(navigator.language) === "en" ? navigator.language : "en";
}

// ``key``'s words in the current language (English when Chinese has none), {name} filled from ``params``.
export function t(key, params = {}) {
  const message = MESSAGES[current][key] ?? MESSAGES.en[key];
  if (message === undefined) return key;
  if (typeof message === "function") return message(params);
  return message.replace(/\{(\w+)\}/g, (whole, name) => (name in params ? String(params[name]) : whole));
}

// A date formatter of the current language, made once per language and options.
export function dateFormat(options) {
  const key = `${current}|${JSON.stringify(options)}`;
  let format = formats.get(key);
  if (!format) {
    format = new Intl.DateTimeFormat(locale(), options);
    formats.set(key, format);
  }
  return format;
}

// Set ``node``'s text to ``key``'s words and remember the key, so a switch of language re-renders it.
export function setText(node, key, params) {
  node.dataset.i18n = key;
  if (params) node.dataset.i18nParams = JSON.stringify(params);
  else delete node.dataset.i18nParams;
  node.textContent = t(key, params);
  return node;
}

function paramsOf(node) {
  try {
    return JSON.parse(node.dataset.i18nParams ?? "{}");
  } catch {
    return {};
  }
}

// Put every marked word under ``root`` in the current language.
export function translate(root = document) {
  for (const node of root.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n, paramsOf(node));
  for (const node of root.querySelectorAll("[data-i18n-attr]")) {
    for (const pair of node.dataset.i18nAttr.split(";")) {
      const [attr, key] = pair.split(":");
      if (attr && key) node.setAttribute(attr.trim(), t(key.trim()));
    }
  }
}

function apply() {
  document.documentElement.lang = current === "zh" ? "zh-CN" : "en";
  document.title = t("page.title");
  translate();
  for (const listener of listeners) listener(current);
}

// Switch to ``next`` and keep the choice (it reaches other pages of this origin as a storage event).
export function setLang(next) {
  if (!LANGS.includes(next)) return;
  try {
    localStorage.setItem(LANG_KEY, next);
  } catch {
    // storage off: the choice lasts for this page only
  }
  if (next === current) return;
  current = next;
  apply();
}

export function onLangChange(listener) {
  listeners.push(listener);
}

// Apply the language now, wire the header's switch (#lang-switch), and follow choices made elsewhere.
export function startI18n() {
  apply();
  const button = document.getElementById("lang-switch");
  button?.addEventListener("click", () => setLang(current === "zh" ? "en" : "zh"));
  onLangChange(() => button?.setAttribute("lang", t("lang.otherCode")));
  button?.setAttribute("lang", t("lang.otherCode"));
  window.addEventListener("storage", (event) => {
    if (event.key !== LANG_KEY) return;
    const next = LANGS.includes(event.newValue) ? event.newValue : normalize(navigator.language);
    if (next !== current) {
      current = next;
      apply();
    }
  });
}

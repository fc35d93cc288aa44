"""The portal's pages: plain server-rendered HTML, every input with a <label for>, an id and a name.

Labels are bilingual (English / 中文). The only script is the one line that opens the modal notice when
that fault is on (``<dialog>.showModal()``, which makes the rest of the page inert until it is closed).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

from demo_apps.expense_portal.config import CATEGORIES, FIELDS, REPORT_LINES

_STYLE = """
body{font-family:"WenQuanYi Micro Hei",sans-serif;margin:0;background:#f4f5f7;color:#172b4d}
header{background:#0b5394;color:#fff;padding:10px 24px;display:flex;justify-content:space-between}
header a,header button{color:#fff;background:none;border:0;font:inherit;cursor:pointer}
main{max-width:720px;margin:24px auto;background:#fff;padding:24px 32px;border-radius:6px}
.field{margin:14px 0}.field label{display:block;font-weight:bold;margin-bottom:4px}
input[type=text],input[type=password],select{width:100%;padding:6px;font-size:15px;box-sizing:border-box}
.error{color:#b00020;display:block}.steps{color:#5e6c84}
dl{display:grid;grid-template-columns:12em 1fr}dt{font-weight:bold}dd{margin:0 0 8px}
button.primary{background:#0b5394;color:#fff;border:0;padding:8px 20px;font-size:15px;border-radius:4px}
"""
_MODAL = """
<dialog id="notice" aria-labelledby="notice-title">
  <h2 id="notice-title">Notice / 通知</h2>
  <p>The portal will be down for maintenance tonight from 22:00. / 系统将于今晚22:00起维护。</p>
  <form method="dialog"><button id="notice-ok" type="submit">OK / 确定</button></form>
</dialog>
<script>document.getElementById("notice").showModal();</script>
"""


def page(title: str, body: str, *, user: str | None = None, modal: bool = False, site: str) -> str:
    nav = ""
    if user is not None:
        nav = (
            f'<span>Signed in as / 当前用户 <span id="user">{escape(user)}</span> · '
            '<a href="/claims/new">New claim / 新建报销</a> · '
            '<a href="/reports/new">Weekly report / 周报提报</a></span>'
            '<form method="post" action="/logout"><button id="sign-out" type="submit">'
            "Sign out / 退出</button></form>"
        )
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)} - {escape(site)}</title><style>{_STYLE}</style></head><body>"
        f"<header><strong>{escape(site)} 报销系统</strong>{nav}</header>"
        f"<main>{body}</main>{_MODAL if modal else ''}</body></html>"
    )


def _error(name: str, errors: Mapping[str, str]) -> str:
    if name not in errors:
        return ""
    return f'<span id="{name}-error" class="error" role="alert">{escape(errors[name])}</span>'


def text_field(
    name: str, label: str, value: str, errors: Mapping[str, str], *, kind: str = "text", hint: str = ""
) -> str:
    described = f' aria-describedby="{name}-error"' if name in errors else ""
    placeholder = f' placeholder="{escape(hint)}"' if hint else ""
    return (
        f'<div class="field"><label for="{name}">{escape(label)}</label>'
        f'<input type="{kind}" id="{name}" name="{name}" value="{escape(value)}"{placeholder}{described}>'
        f"{_error(name, errors)}</div>"
    )


def _label(name: str) -> str:
    english, chinese = next((en, zh) for field, en, zh in FIELDS if field == name)
    return f"{english} / {chinese}"


def login_form(error: str, next_path: str) -> str:
    alert = f'<p id="login-error" class="error" role="alert">{escape(error)}</p>' if error else ""
    return (
        "<h1>Sign in / 登录</h1>"
        f'{alert}<form method="post" action="/login">'
        f'<input type="hidden" name="next" value="{escape(next_path)}">'
        + text_field("username", "User name / 用户名", "", {})
        + text_field("password", "Password / 密码", "", {}, kind="password")
        + '<button class="primary" id="sign-in" type="submit">Sign in / 登录</button></form>'
    )


def claim_page_one(token: str, values: Mapping[str, str], errors: Mapping[str, str]) -> str:
    fields = "".join(
        text_field(name, _label(name), values.get(name, ""), errors, hint=hint)
        for name, hint in (("vendor", ""), ("invoice_number", ""), ("invoice_date", "2025-03-14"))
    )
    return (
        '<h1>New expense claim / 新建报销单</h1><p class="steps">Step 1 of 3: invoice / 第1步：发票信息</p>'
        f'<form method="post" action="/claims/{escape(token)}/page/1">{fields}'
        '<button class="primary" id="next" type="submit">Next / 下一步</button></form>'
    )


def claim_page_two(
    token: str, values: Mapping[str, str], errors: Mapping[str, str], attachment_name: str
) -> str:
    chosen = values.get("category", "")
    options = '<option value="">— Choose / 请选择 —</option>' + "".join(
        f'<option value="{value}"{" selected" if value == chosen else ""}>{escape(text)}</option>'
        for value, text in CATEGORIES
    )
    described = ' aria-describedby="category-error"' if "category" in errors else ""
    attached = (
        f'<span id="attached">Attached / 已上传: {escape(attachment_name)}</span>' if attachment_name else ""
    )
    return (
        '<h1>New expense claim / 新建报销单</h1><p class="steps">Step 2 of 3: amount / 第2步：金额与类别</p>'
        f'<form method="post" action="/claims/{escape(token)}/page/2" enctype="multipart/form-data">'
        + text_field("amount", _label("amount"), values.get("amount", ""), errors, hint="1234.50")
        + text_field("tax", _label("tax"), values.get("tax", ""), errors, hint="0.00")
        + f'<div class="field"><label for="category">{_label("category")}</label>'
        f'<select id="category" name="category"{described}>{options}</select>'
        f"{_error('category', errors)}</div>"
        + text_field("cost_centre", _label("cost_centre"), values.get("cost_centre", ""), errors)
        + '<div class="field"><label for="attachment">Invoice attachment / 发票附件</label>'
        '<input type="file" id="attachment" name="attachment" accept=".pdf,.png,.jpg,.jpeg">'
        f"{attached}{_error('attachment', errors)}</div>"
        f'<a id="back" href="/claims/{escape(token)}/page/1">Back / 上一步</a> '
        '<button class="primary" id="next" type="submit">Next / 下一步</button></form>'
    )


def _facts(values: Mapping[str, str], attachment_name: str) -> str:
    categories = dict(CATEGORIES)
    rows = []
    for name, _, _ in FIELDS:
        value = values.get(name, "")
        shown = categories.get(value, value) if name == "category" else value
        rows.append(f'<dt>{_label(name)}</dt><dd id="review-{name}">{escape(shown)}</dd>')
    rows.append(f'<dt>Attachment / 附件</dt><dd id="review-attachment">{escape(attachment_name)}</dd>')
    return f"<dl>{''.join(rows)}</dl>"


def claim_review(token: str, values: Mapping[str, str], attachment_name: str) -> str:
    return (
        '<h1>Review your claim / 确认报销单</h1><p class="steps">Step 3 of 3: review / 第3步：确认提交</p>'
        + _facts(values, attachment_name)
        + f'<form method="post" action="/claims/{escape(token)}/submit">'
        f'<input type="hidden" name="form_token" value="{escape(token)}">'
        f'<a id="back" href="/claims/{escape(token)}/page/2">Back / 上一步</a> '
        '<button class="primary" id="submit" type="submit">Submit claim / 提交报销</button></form>'
    )


def claim_filed(number: str, values: Mapping[str, str], attachment_name: str) -> str:
    return (
        "<h1>Claim submitted / 报销单已提交</h1>"
        f'<p>Claim number / 报销单号: <strong id="claim-number">{escape(number)}</strong></p>'
        + _facts(values, attachment_name)
        + '<p><a id="new-claim" href="/claims/new">New claim / 新建报销</a></p>'
    )


def already_submitted(number: str) -> str:
    return (
        '<h1>Already submitted / 已提交</h1><p id="already-submitted" role="alert">'
        f"This form was already submitted as / 该表单已提交为 <strong>{escape(number)}</strong>."
        " Nothing was filed again. / 未重复提交。</p>"
    )


def report_form(token: str, week: str, item: str, lines: Sequence[str], errors: Mapping[str, str]) -> str:
    """The week, the items added so far, one item field with **Add item** (the form's first button, so
    Enter in the field adds) and **Submit report**; each press posts the whole form."""
    items = "".join(f"<li>{escape(line)}</li>" for line in lines)
    return (
        "<h1>Weekly report / 周报提报</h1>"
        f'<form method="post" action="/reports/{escape(token)}/submit">'
        + text_field("week", "Week / 周次", week, errors, hint="2025-W23")
        + f'<p id="item-count">Items / 事项: {len(lines)} of {REPORT_LINES} / 已添加{len(lines)}项'
        f'（最多{REPORT_LINES}项）</p><ol id="report-items">{items}</ol>'
        + text_field("item", "Item / 事项", item, errors)
        + f'<button id="add-item" type="submit" formaction="/reports/{escape(token)}/items">'
        "Add item / 添加一项</button> "
        '<button class="primary" id="submit-report" type="submit">Submit report / 提交周报</button></form>'
    )


def report_filed(number: str, week: str, lines: Sequence[str]) -> str:
    items = "".join(f"<li>{escape(line)}</li>" for line in lines)
    return (
        "<h1>Report submitted / 周报已提交</h1>"
        f'<p>Report number / 周报编号: <strong id="report-number">{escape(number)}</strong></p>'
        f'<p>Week / 周次: <span id="report-week">{escape(week)}</span></p><ol id="report-lines">{items}</ol>'
    )


def server_error() -> str:
    return (
        '<h1>Something went wrong / 系统错误</h1><p id="server-error" role="alert">'
        "The server could not save your form. Please try again. / 服务器未能保存表单，请重试。</p>"
    )


def not_found() -> str:
    return '<h1>Not found / 未找到</h1><p id="not-found">No such page or form. / 页面或表单不存在。</p>'

"""Deterministic query expansion across Chinese and English office words, for the lexical side of search.

The vector side finds an English question's Chinese page by meaning; the words side finds it only if
they share a word. A glossary of common office terms (发票 invoice, 报销 expense claim, 合同 contract …)
adds the other language's words of each query term, searched with a lower weight than the query's own
words (``EXPANSION_BOOST``), so a page in the query's language that has the words still ranks first.
Names cross scripts the same way: the query's Chinese words add their pinyin, and two short Latin
words in a row their joined form, which documents index beside their words (``text.tokenize``). No
model is involved: an expansion can only add such words, never change the query.
"""

from __future__ import annotations

from cloud_infer.recall.text import query_terms, transliterations, words

# Weight of a glossary translation against one of the query's own terms in the lexical score.
EXPANSION_BOOST = 0.5

# Each line: Chinese words | English phrases, comma-separated. A Chinese word matches one of the query's
# segmented words; an English phrase matches when all its words are among the query's.
_GLOSSARY = """
发票 | invoice
收据 | receipt
报销 报销单 | reimbursement, expense claim
费用 | expense, expenses, cost
合同 | contract, agreement
金额 总额 | amount, total
付款 支付 | payment, pay
订单 | order
采购 | purchase, procurement
供应商 | supplier, vendor
客户 | customer, client
会议 | meeting
纪要 会议纪要 | minutes
周报 | weekly report
月报 | monthly report
报告 | report
出差 差旅 | business trip, travel
航班 机票 | flight
酒店 住宿 | hotel
请假 休假 假期 | leave, vacation
年假 | annual leave
审批 | approval, approve
审批人 | approver
申请 | request, application
工单 | ticket
问题 故障 | issue, incident
密码 | password
账号 | account
工资 薪资 工资条 | salary, payslip, payroll
预算 | budget
项目 | project
任务 | task
截止 截止日期 | deadline, due date
日程 日历 | schedule, calendar
邮件 | email, mail
附件 | attachment
电话 | phone, telephone
地址 | address
快递 包裹 | parcel, package, delivery
退款 | refund
税 税率 | tax
电费 | electricity bill
账单 | bill, statement
房租 租金 | rent
培训 | training
面试 | interview
入职 | onboarding
离职 | resignation
绩效 | performance
部署 发布 上线 | deployment, release
配置 | configuration, config
日志 | log, logs
主题 | topic
集群 | cluster
服务器 | server
数据库 | database
备份 | backup
菜谱 食谱 | recipe
值班 值班表 排班 | on-call, rota
双十一 双11 | singles' day, singles day
证书 | certificate, cert
过期 | expired, expiry
结账 | checkout
复盘 | postmortem, post-mortem, retrospective
故障 宕机 | outage
商务舱 | business class
经济舱 | economy class
构建 | build, builds
平台 | platform
入职清单 | onboarding checklist
显示器 | monitor, display
笔记本 笔记本电脑 | laptop
"""


def _glossary() -> list[tuple[frozenset[str], frozenset[tuple[str, ...]]]]:
    """Each line's Chinese words and English phrases (each a tuple of lower-cased words)."""
    lines = []
    for line in _GLOSSARY.strip().splitlines():
        chinese, english = line.split("|")
        phrases = frozenset(tuple(words(p)) for p in english.split(",") if p.strip())
        lines.append((frozenset(chinese.split()), phrases))
    return lines


_LINES = _glossary()


def expansions(text: str) -> list[str]:
    """``translations`` and then ``names``: every other form of the query's words."""
    return list(dict.fromkeys(translations(text) + names(text)))


def translations(text: str) -> list[str]:
    """The other language's glossary words of the query's words, without the query's own words."""
    own = set(words(text))
    added: dict[str, None] = {}
    for chinese, phrases in _LINES:
        if chinese & own:
            for phrase in sorted(phrases):
                for word in phrase:
                    added.setdefault(word)
        if any(set(phrase) <= own for phrase in phrases):
            for word in sorted(chinese):
                added.setdefault(word)
    return [word for word in added if word not in own]


def names(text: str) -> list[str]:
    """The other script's form of the query's names (``text.transliterations``: 李娜 "lina", "Li Na"
    "lina"). A name is the same name in either script, so these weigh as much as the query's words."""
    own = set(words(text))
    return [word for word in transliterations(query_terms(text), text) if word not in own]

"""Who may command what: the policy's whole table, as plain function calls."""

from __future__ import annotations

import pytest

import cloud_infer.commands
from cloud_infer.auth import TokenAuthority
from cloud_infer.commands import policy
from cloud_infer.commands.records import CommandKind, CommandRecord, Issuer
from cloud_infer.errors import PermissionDeniedError

AUTHORITY = TokenAuthority("k1", {"k1": "policy-test-secret-0123456789abcdef0123"})
ALICE, BOB = "alice@example.com", "bob@example.com"


def _record(kind: CommandKind, issuer: Issuer) -> CommandRecord:
    return CommandRecord(
        command_id="c1",
        user_id=ALICE,
        session_id="desk-1",
        issuer=issuer,
        kind=kind,
        action=kind,
        command={},
        issued_ns=1,
        deadline_ns=2,
    )


@pytest.mark.parametrize(
    ("issuer", "owner", "kind", "allowed"),
    [
        (Issuer.user(ALICE), ALICE, "notice", True),
        (Issuer.user(ALICE), ALICE, "workflow_step", True),
        (Issuer.user(ALICE), ALICE, "remediation", True),
        (Issuer.user(BOB), ALICE, "notice", False),
        (Issuer.user(BOB), ALICE, "remediation", False),
        (Issuer.admin("ops-1"), ALICE, "remediation", True),
        (Issuer.admin("ops-1"), ALICE, "workflow_step", False),
        (Issuer.admin("ops-1"), ALICE, "notice", False),
        (Issuer.system("workflows"), ALICE, "workflow_step", True),
        (Issuer.system("workflows"), ALICE, "cancel", False),  # cancels come from cancel()
        (Issuer.user(ALICE), ALICE, "cancel", False),
    ],
)
def test_who_may_issue_what(issuer: Issuer, owner: str, kind: CommandKind, allowed: bool) -> None:
    if allowed:
        policy.check_issue(issuer, owner, kind)
    else:
        with pytest.raises(PermissionDeniedError):
            policy.check_issue(issuer, owner, kind)


def test_who_may_read_what() -> None:
    admin = Issuer.admin("ops-1")
    step, fix = _record("workflow_step", Issuer.user(ALICE)), _record("remediation", admin)
    policy.check_view(Issuer.user(ALICE), ALICE, step)
    policy.check_view(Issuer.user(ALICE), ALICE, fix)  # the owner sees what was done to their desktop
    policy.check_view(admin, ALICE, fix)
    for issuer, record in ((admin, step), (Issuer.user(BOB), fix), (Issuer.admin("ops-2"), step)):
        with pytest.raises(PermissionDeniedError):
            policy.check_view(issuer, ALICE, record)


def test_http_callers_act_as_what_their_token_says() -> None:
    read = AUTHORITY.verify(AUTHORITY.issue(ALICE, ["read"]), "read")
    manage = AUTHORITY.verify(AUTHORITY.issue(ALICE, ["read", "manage"]), "read")
    admin = AUTHORITY.verify(AUTHORITY.issue("ops-1", ["read", "admin"]), "read")
    assert policy.issuer_for(read, issuing=False) == Issuer.user(ALICE)
    with pytest.raises(PermissionDeniedError):
        policy.issuer_for(read, issuing=True)  # a read token looks, it does not act
    assert policy.issuer_for(manage, issuing=True) == Issuer.user(ALICE)
    assert policy.issuer_for(admin, issuing=True) == Issuer.admin("ops-1")
    assert policy.target_owner(manage, None) == ALICE
    assert policy.target_owner(manage, ALICE) == ALICE
    with pytest.raises(PermissionDeniedError):
        policy.target_owner(manage, BOB)
    assert policy.target_owner(admin, BOB) == BOB


def test_the_package_exports_its_public_names() -> None:
    assert all(hasattr(cloud_infer.commands, name) for name in cloud_infer.commands.__all__)
    assert {"CommandService", "Issuer", "SessionRef", "CommandStatus"} <= set(cloud_infer.commands.__all__)

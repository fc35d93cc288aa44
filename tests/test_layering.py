"""Which of our packages may import which: the floors of the data path, read from the source with ``ast``.

``protos`` (the contract) at the bottom, then ``shadowdesk_common`` (helpers for everyone), then the agent,
the store, the cloud tier over the store, and ``shadowdesk`` (the CLI) over all of them. The agent never
imports the cloud tier or the store, and no product package imports ``harness``, ``bench``, ``tests`` or
``demo_apps`` (the apps the demo and the tests work in, which import nothing of ours); ``bench`` uses
``harness``, never ``tests``. The admin console stands apart: it imports only the contract and the bottom
floor (it reaches the cloud through its API), and nothing of ours imports it (``shadowdesk console`` and
the demo run it as its own process, ``python -m admin_console``). Lazy imports inside functions count the
same. Within ``tests``, helpers come only from ``tests/support``: never from another test module or a
conftest.py, which holds only fixtures.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.imports import absolute_imports

REPO = Path(__file__).resolve().parents[1]
PRODUCT = {
    "protos",
    "shadowdesk_common",
    "session_agent",
    "recall_store",
    "cloud_infer",
    "admin_console",
    "shadowdesk",
}
OURS = PRODUCT | {"harness", "bench", "tests", "demo_apps"}
# Besides itself. The ops console reaches the cloud through its API, not by importing the cloud tier.
CONSOLE = "admin_console"
MAY_IMPORT = {
    "protos": set(),
    "shadowdesk_common": {"protos"},
    "session_agent": {"protos", "shadowdesk_common"},
    "recall_store": {"protos", "shadowdesk_common"},
    "cloud_infer": {"protos", "shadowdesk_common", "recall_store"},
    CONSOLE: {"protos", "shadowdesk_common"},
    "shadowdesk": PRODUCT - {"shadowdesk", CONSOLE},
    "harness": PRODUCT - {CONSOLE} | {"demo_apps"},
    "bench": PRODUCT - {CONSOLE} | {"harness", "demo_apps"},
    "demo_apps": set(),
}


def our_imports(package: str) -> Iterator[tuple[str, str]]:
    """(file, package of ours) for every absolute import of one of our packages under ``package``."""
    for path, imports in absolute_imports(sorted((REPO / package).rglob("*.py"))).items():
        for lineno, name in imports:
            top = name.partition(".")[0]
            if top in OURS and top != package:
                yield f"{path.relative_to(REPO)}:{lineno}", top


def test_every_package_of_ours_has_a_floor() -> None:
    packages = {path.parent.name for path in REPO.glob("*/__init__.py")} - {"tests"}
    assert packages == set(MAY_IMPORT)


@pytest.mark.parametrize("package", sorted(MAY_IMPORT))
def test_package_imports_only_the_floors_below_it(package: str) -> None:
    wrong = [
        f"{where} imports {top}" for where, top in our_imports(package) if top not in MAY_IMPORT[package]
    ]
    assert not wrong, wrong


def test_nothing_of_ours_imports_the_console() -> None:
    importers = [
        f"{where} imports {CONSOLE}"
        for package in sorted(MAY_IMPORT)
        for where, top in our_imports(package)
        if top == CONSOLE
    ]
    assert not importers, importers


def test_tests_take_helpers_only_from_tests_support() -> None:
    wrong = [
        f"{path.relative_to(REPO)}:{lineno} imports {name}"
        for path, imports in absolute_imports(sorted((REPO / "tests").rglob("*.py"))).items()
        for lineno, name in imports
        if name.split(".")[0] == "tests" and name.split(".")[:2] != ["tests", "support"]
    ]
    assert not wrong, wrong

"""Routes find what they serve from one way: ``cloud_infer.api_deps`` reads ``app.state``, and each
service has one ``Annotated`` dependency, declared beside its router and imported by any other."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "cloud_infer"
DEPENDENCY = re.compile(r"^(\w+Dep) = Annotated\[", re.MULTILINE)


def test_each_service_dependency_is_declared_once() -> None:
    declared: dict[str, list[str]] = defaultdict(list)
    for path in PACKAGE.rglob("*.py"):
        for name in DEPENDENCY.findall(path.read_text()):
            declared[name].append(str(path.relative_to(PACKAGE)))
    assert declared, "no dependency found: the pattern no longer matches the code"
    twice = {name: files for name, files in declared.items() if len(files) > 1}
    assert not twice, f"declare each dependency once, beside its router, and import it elsewhere: {twice}"


def test_only_api_deps_and_the_app_touch_app_state() -> None:
    readers = {
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if re.search(r"\.state\.(services|settings)\b", path.read_text())
    }
    assert readers == {"api_deps.py", "app.py"}, readers

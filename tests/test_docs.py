"""Docs that are generated from code stay in step with it."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_configuration_doc_matches_the_settings_classes() -> None:
    render = runpy.run_path(str(REPO / "scripts" / "config_docs.py"))["render"]
    assert (REPO / "docs" / "configuration.md").read_text() == render(), (
        "docs/configuration.md is stale: run .venv/bin/python scripts/config_docs.py"
    )


def test_readme_test_command_is_what_ci_runs() -> None:
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci" / "run").read_text()
    assert "`bash scripts/test.sh`" in readme
    assert "bash scripts/test.sh" in ci


def test_the_security_doc_cites_only_tests_that_exist() -> None:
    """Each test file docs/security.md names exists (a bare name somewhere under tests/), and each test
    function it names is defined in that file (or, named alone, in some test file)."""
    doc = (REPO / "docs" / "security.md").read_text()
    files = list((REPO / "tests").rglob("test_*.py"))
    sources = {path: path.read_text() for path in files}
    missing = []
    for span in re.findall(r"`([^`]+)`", doc):
        for cited in re.findall(r"[\w/.]*test_\w+(?:\.py)?(?:::test_\w+)?", span):
            path, _, name = cited.partition("::")
            if path.endswith(".py"):
                candidates = [f for f in files if f.relative_to(REPO).as_posix() == path or f.name == path]
            else:
                candidates, name = files, path
            defined = re.compile(rf"^(?:async )?def {re.escape(name)}\b", re.M) if name else None
            if not candidates or (defined and not any(defined.search(sources[f]) for f in candidates)):
                missing.append(cited)
    assert not missing, f"docs/security.md cites tests that do not exist: {missing}"

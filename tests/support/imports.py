"""The absolute imports of source files, read with ``ast`` in a fresh interpreter.

In a long test process, CPython 3.11's AST constructor can raise "recursion depth mismatch" when another
thread is in it at the same time (python/cpython#106905); a child process has no such neighbour.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

_SCAN = """
import ast, json, sys
found = {}
for name in sys.argv[1:]:
    imports = found[name] = []
    for node in ast.walk(ast.parse(open(name, encoding="utf-8").read(), name)):
        if isinstance(node, ast.Import):
            imports += [[node.lineno, alias.name] for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            imports.append([node.lineno, node.module])
print(json.dumps(found))
"""


def absolute_imports(paths: Iterable[Path]) -> dict[Path, list[tuple[int, str]]]:
    """(line, module) of every absolute import in each file, inside functions too."""
    files = list(paths)
    scan = subprocess.run(
        [sys.executable, "-c", _SCAN, *map(str, files)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    found = json.loads(scan.stdout)
    return {path: [(line, module) for line, module in found[str(path)]] for path in files}

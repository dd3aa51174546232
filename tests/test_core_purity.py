"""The protocol core does no I/O: nothing under _core imports network or process modules."""

from __future__ import annotations

import ast
from pathlib import Path

import postwire._core

FORBIDDEN = {"socket", "ssl", "asyncio", "subprocess", "selectors", "threading"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def test_core_imports_no_io_modules() -> None:
    core = Path(postwire._core.__file__).parent
    files = sorted(core.glob("*.py"))
    assert len(files) >= 8
    bad = {f.name: sorted(_imports(f) & FORBIDDEN) for f in files if _imports(f) & FORBIDDEN}
    assert bad == {}


def test_core_relative_imports_stay_pure() -> None:
    # The only module outside _core that _core may use is errors (itself pure).
    core = Path(postwire._core.__file__).parent
    for f in core.glob("*.py"):
        tree = ast.parse(f.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 2:
                assert node.module == "errors", f"{f.name} imports ..{node.module}"
    errors_src = (core.parent / "errors.py").read_text(encoding="utf-8")
    assert not (_imports(core.parent / "errors.py") & FORBIDDEN), errors_src[:0]

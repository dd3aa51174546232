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
    files = sorted(core.rglob("*.py"))
    assert len(files) >= 8
    bad = {
        str(f.relative_to(core)): sorted(_imports(f) & FORBIDDEN)
        for f in files
        if _imports(f) & FORBIDDEN
    }
    assert bad == {}


def test_core_imports_nothing_outside_itself() -> None:
    # Errors live at the bottom (_core/errors.py): the core needs no other layer,
    # and no module of the package imports the core back into a cycle.
    core = Path(postwire._core.__file__).parent
    for f in core.rglob("*.py"):
        name = str(f.relative_to(core))
        # A relative import may climb to _core itself, never above it: level 1 in
        # _core/x.py, up to 2 in _core/sasl/x.py.
        deepest = len(f.relative_to(core).parts)
        tree = ast.parse(f.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                assert node.level <= deepest, f"{name} imports from outside _core: {node.module}"
                if node.level == 0 and node.module:
                    assert not node.module.startswith("postwire"), f"{name}: {node.module}"


def test_errors_module_depends_only_on_the_reply_value() -> None:
    core = Path(postwire._core.__file__).parent
    tree = ast.parse((core / "errors.py").read_text(encoding="utf-8"))
    relative = {
        node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level
    }
    assert relative == {"reply"}
    reply_tree = ast.parse((core / "reply.py").read_text(encoding="utf-8"))
    assert not [n for n in ast.walk(reply_tree) if isinstance(n, ast.ImportFrom) and n.level]


def test_public_error_classes_are_the_core_ones() -> None:
    import postwire.errors
    from postwire._core import errors as core_errors

    for name in postwire.errors.__all__:
        assert getattr(postwire.errors, name) is getattr(core_errors, name)
    assert postwire.errors.Timeout.__module__ == "postwire.errors"

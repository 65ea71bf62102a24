"""The package's rooms keep to themselves: no module reaches into another subpackage's private parts.

A name or module starting with ``_`` is private to its own package. The two package-wide private
helpers, ``pedgm_kit._utils`` (atomic writes) and ``pedgm_kit._backend`` (the quiet Keras import), are
shared by every room on purpose and are the only exceptions.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "pedgm_kit"
SHARED_PRIVATE = {"pedgm_kit._utils", "pedgm_kit._backend"}


def _module(path: Path) -> tuple[str, str]:
    """(module name, package it belongs to)."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    if parts[-1] == "__init__":
        name = ".".join(parts[:-1])
        return name, name
    return ".".join(parts), ".".join(parts[:-1])


def _imports(path: Path):
    name, package = _module(path)
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            yield node.lineno, target, [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, []


def _package_of(target: str) -> str:
    path = PACKAGE.parent.joinpath(*target.split("."))
    return target if path.is_dir() else target.rsplit(".", 1)[0]


def cross_package_private_imports() -> list[str]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        _, package = _module(path)
        for line, target, names in _imports(path):
            if not target.startswith("pedgm_kit") or target in SHARED_PRIVATE:
                continue
            if _package_of(target) == package:
                continue  # inside its own room
            private_module = any(p.startswith("_") and not p.startswith("__") for p in target.split(".")[1:])
            private_names = [n for n in names if n.startswith("_") and not n.startswith("__")]
            if private_module or private_names:
                found.append(f"{path.relative_to(PACKAGE.parent)}:{line}: from {target} import {', '.join(names)}")
    return found


def test_no_cross_package_private_imports():
    assert cross_package_private_imports() == []


def test_the_check_sees_a_private_import(tmp_path, monkeypatch):
    """The walker itself works: a module importing another room's private name is reported."""
    room = tmp_path / "pedgm_kit"
    (room / "a").mkdir(parents=True)
    (room / "b").mkdir()
    for init in (room / "__init__.py", room / "a" / "__init__.py", room / "b" / "__init__.py"):
        init.write_text("")
    (room / "a" / "_core.py").write_text("def _hidden():\n    pass\n")
    (room / "b" / "user.py").write_text("from ..a._core import _hidden\nfrom .._utils import atomic_path\n")
    monkeypatch.setattr(__import__(__name__), "PACKAGE", room)
    assert cross_package_private_imports() == ["pedgm_kit/b/user.py:1: from pedgm_kit.a._core import _hidden"]


def test_code_and_notebooks_cite_only_files_in_the_repository():
    """Design notes are cited as docs/design.md (in this repository), never a file beside it."""
    outside = ("DESIGN.md", "STYLE.md", "seed-reference")
    files = sorted(PACKAGE.rglob("*")) + sorted((PACKAGE.parent / "notebooks").glob("*"))
    found = [f"{p.relative_to(PACKAGE.parent)}: {word}" for p in files
             if p.suffix in (".py", ".ipynb", ".j2", ".md") for word in outside if word in p.read_text(encoding="utf-8")]
    assert any(p.suffix == ".ipynb" for p in files)
    assert found == []
    assert (PACKAGE.parent / "docs" / "design.md").is_file()

"""The packages import one another in one direction only (docs/architecture.md).

- ``objstore/`` (the shared core) imports none of ``gateway``, ``metadata``, ``ops``;
- ``metadata/`` imports only itself and ``objstore``;
- ``metadata/raft/`` (the sans-IO core) imports nothing of the project outside itself, and
  no IO or clock module (asyncio, aiohttp, time, os, socket, threading);
- ``gateway/`` imports ``objstore`` and, of ``metadata``, only ``metadata.api``;
- nothing but ``ops`` imports ``ops``; nothing but ``gateway`` and ``ops`` imports ``gateway``.

Every import counts: module level or inside a function, ``import x``, ``from x import y``,
relative imports, and ``importlib.import_module("x")`` with a literal name.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROJECT = ("objstore", "metadata", "gateway", "ops")
RAFT_FORBIDDEN_STDLIB = {"asyncio", "aiohttp", "time", "os", "socket", "threading"}


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, root: Path = ROOT) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in one source file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module_name(path, root).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            found.append((node.lineno, mod))
            # ``from pkg import submodule`` imports pkg.submodule
            found += [(node.lineno, f"{mod}.{alias.name}") for alias in node.names]
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr == "import_module" and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            found.append((node.lineno, node.args[0].value))
    return found


def violation(importer: str, imported: str) -> str | None:
    """Why ``importer`` may not import ``imported``, or None when it may."""
    top = imported.split(".")[0]
    home = importer.split(".")[0]
    if importer == "metadata.raft" or importer.startswith("metadata.raft."):
        if top in PROJECT and not (imported == "metadata.raft" or imported.startswith("metadata.raft.")):
            return "the Raft core imports nothing of the project outside metadata.raft"
        if top in RAFT_FORBIDDEN_STDLIB:
            return f"the Raft core does no IO and reads no clock ({top})"
        return None
    if top not in PROJECT or top == home:
        return None
    if home == "objstore":
        return "objstore (the shared core) imports none of gateway, metadata, ops"
    if home == "metadata":
        return "metadata imports only itself and objstore" if top != "objstore" else None
    if home == "gateway":
        if top == "metadata" and not (imported == "metadata.api" or imported.startswith("metadata.api.")
                                      or imported == "metadata"):
            return "the gateway imports only metadata.api of the metadata package"
        if top == "ops":
            return "nothing but ops imports ops"
        return None
    return None  # ops may import anything


def sources() -> list[Path]:
    return sorted(p for pkg in PROJECT for p in (ROOT / pkg).rglob("*.py"))


def test_every_package_is_scanned() -> None:
    names = {module_name(p) for p in sources()}
    for expected in ("objstore.types", "metadata.raft.core", "metadata.api.client", "gateway.router"):
        assert expected in names


@pytest.mark.parametrize("path", sources(), ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_follow_the_package_rules(path: Path) -> None:
    importer = module_name(path)
    bad = [f"{path.relative_to(ROOT)}:{line}: imports {mod}: {why}"
           for line, mod in imports_of(path) if (why := violation(importer, mod))]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("importer, imported, allowed", [
    ("objstore.node.app", "gateway.app", False),
    ("objstore.node.app", "metadata.api.client", False),
    ("objstore.cluster.launcher", "ops.cli", False),
    ("objstore.node.app", "objstore.types", True),
    ("metadata.app", "gateway.xml", False),
    ("metadata.app", "ops.status", False),
    ("metadata.fsm.machine", "objstore.errors", True),
    ("gateway.app", "metadata.api.client", True),
    ("gateway.handlers.bucket", "metadata.fsm.machine", False),
    ("gateway.handlers.bucket", "ops.cli", False),
    ("metadata.raft.core", "metadata.raft.messages", True),
    ("metadata.raft.core", "objstore.errors", False),
    ("metadata.raft.core", "metadata.api.commands", False),
    ("metadata.raft.core", "time", False),
    ("metadata.raft.core", "asyncio", False),
    ("metadata.raft.core", "random", True),
    ("ops.cli", "gateway.app", True),
])
def test_the_rules_themselves(importer: str, imported: str, allowed: bool) -> None:
    assert (violation(importer, imported) is None) is allowed


def test_imports_seen_in_every_form(tmp_path: Path) -> None:
    pkg = tmp_path / "objstore" / "sub"
    pkg.mkdir(parents=True)
    src = pkg / "mod.py"
    src.write_text(
        "import gateway.app\n"
        "from metadata.api import client\n"
        "from ..x import y\n"
        "def f():\n"
        "    import importlib\n"
        "    importlib.import_module('ops.status')\n"
    )
    mods = {m for _, m in imports_of(src, tmp_path)}
    assert {"gateway.app", "metadata.api", "metadata.api.client", "objstore.x", "objstore.x.y",
            "importlib", "ops.status"} <= mods

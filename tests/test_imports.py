"""The package's layering, read from the source: the core never imports the channel plugins, and no module imports
itself back through others (an import circle). Imports under ``if TYPE_CHECKING:`` count too."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = ("carecast", "channels", "flows")


def installed_names() -> dict[str, str]:
    """The name each folder is installed (and imported) under: pyproject's ``package-dir``, else its own name."""
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    mapped = {folder: name for name, folder in setuptools.get("package-dir", {}).items() if name}
    return {folder: mapped.get(folder, folder) for folder in FOLDERS}


NAMES = installed_names()
CHANNELS, FLOWS = NAMES["channels"], NAMES["flows"]
PACKAGES = tuple(NAMES.values())


def module_name(file: Path) -> str:
    folder, *rest = file.relative_to(ROOT).with_suffix("").parts
    parts = [NAMES[folder], *rest]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(file: Path, known: set[str]) -> set[str]:
    """The modules of the project that ``file`` imports, anywhere in it (late imports inside functions too)."""
    package = module_name(file) if file.name == "__init__.py" else module_name(file).rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # `from package import module` imports the module; `from module import name` the module itself.
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        for name in names:
            # `import a.b.c` needs a, a.b and a.b.c: the nearest known module stands for it.
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name:
                found.add(name)
    return found


def graph() -> dict[str, set[str]]:
    files = [file for folder in FOLDERS for file in (ROOT / folder).rglob("*.py")]
    known = {module_name(file) for file in files}
    return {module_name(file): imports_of(file, known) - {module_name(file)} for file in files}


def test_the_walk_sees_the_imports() -> None:
    imports = graph()
    assert "carecast.plugin" in imports[f"{CHANNELS}.sms"]
    assert "carecast.config" in imports["carecast.practice"]
    assert "carecast.sources.rss" in imports["carecast.sources"]  # a late import, inside a function


def test_the_core_never_imports_the_plugins() -> None:
    offenders = {
        module: sorted(name for name in imported if name.split(".")[0] in (CHANNELS, FLOWS))
        for module, imported in graph().items()
        if module.split(".")[0] == "carecast"
    }
    # The CLI starts Prefect's flows for the commands that run them, and nothing under channels/.
    for module in [name for name in offenders if name == "carecast.cli" or name.startswith("carecast.cli.")]:
        offenders[module] = [name for name in offenders[module] if not name.startswith(FLOWS)]
    assert {module: names for module, names in offenders.items() if names} == {}


def test_channels_import_the_core_and_no_flow() -> None:
    for module, imported in graph().items():
        if module.split(".")[0] == CHANNELS:
            assert not {name for name in imported if name.split(".")[0] == FLOWS}, module


#: What a channel plugin may import from CareCast: the public plugin API (its contract and helper modules).
PLUGIN_API = "carecast.plugin"


def test_channels_import_only_the_public_plugin_api() -> None:
    offenders = {
        module: sorted(
            name
            for name in imported
            if name.split(".")[0] == "carecast" and not f"{name}.".startswith(f"{PLUGIN_API}.")
        )
        for module, imported in graph().items()
        if module.split(".")[0] == CHANNELS
    }
    assert {module: names for module, names in offenders.items() if names} == {}


def test_the_plugin_api_is_above_the_core() -> None:
    """The core never imports the plugin API (it re-exports the core; the other way round would be a circle)."""
    for module, imported in graph().items():
        if module.split(".")[0] == "carecast" and not module.startswith((PLUGIN_API, "carecast.testing")):
            assert not {name for name in imported if f"{name}.".startswith(f"{PLUGIN_API}.")}, module


def cycles(imports: dict[str, set[str]]) -> list[list[str]]:
    """Every import circle, each once, as the modules around it (Tarjan's strongly connected components)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for target in sorted(imports.get(module, ())):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(imports):
        if module not in index:
            visit(module)
    return found


def test_cycles_finds_a_circle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_circle(package: str) -> None:
    assert [circle for circle in cycles(graph()) if any(m.split(".")[0] == package for m in circle)] == []

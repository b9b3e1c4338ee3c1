"""Install the ``channels/`` and ``flows/`` folders as ``carecast_channels`` and ``carecast_flows`` (issue 23).

A distribution that installs top-level packages named ``channels`` and ``flows`` breaks any environment that also
has Django Channels (``channels``) or another ``flows``. The folders stay where they are; setuptools' ``package-dir``
installs them under CareCast's own names, and every import, entry point, ``python -m`` and module reference in the
tree is rewritten to match. Run from anywhere, as often as you like (it is idempotent; run it again after a folder
gains a subpackage, so the list of packages in pyproject.toml follows):

    python tools/rename_packages.py            # rewrite the tree, print what changed
    python tools/rename_packages.py --check    # exit 1 if anything is left to rewrite

Run it with the project's Python (``.venv/bin/python tools/rename_packages.py``): it sorts the rewritten imports
and formats the files with ruff. Then reinstall (``.venv/bin/pip install -e '.[test]'``: the editable install's
finder maps the new names) before running anything.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: Folder: the name it is installed and imported under.
RENAMED = {"channels": "carecast_channels", "flows": "carecast_flows"}
#: Where mypy finds the renamed packages (a link per folder: mypy cannot follow an editable install's finder).
MYPY_LINKS = ".mypy-packages"
#: What the rewrite reads: the code, its tests, benchmarks and docs, and the files that name modules.
TREES = ("carecast", "channels", "flows", "tests", "bench", "docs")
TOP_FILES = ("README.md", "Makefile", "pyproject.toml")
SUFFIXES = (".py", ".md", ".toml", ".yaml", ".yml", ".txt")
OLD = "|".join(RENAMED)
#: ruff's line length: a docstring or comment the longer names push past it is rewrapped.
LIMIT = 120

Rewrite = Callable[[str], str]


def _new(match: re.Match[str], group: int) -> str:
    return RENAMED[match.group(group)]


#: Rewrites for every file: (what they fix, the rewrite).
RULES: list[tuple[str, Rewrite]] = [
    # `from channels.x import ...`, `import flows.secrets` (code, and code blocks in Markdown)
    (
        "import",
        lambda text: re.sub(
            rf"(?m)^(\s*(?:>>> )?(?:from|import) +)({OLD})(?=[.\s])", lambda m: m.group(1) + _new(m, 2), text
        ),
    ),
    # Sphinx roles in docstrings: :mod:`channels.graph`, :func:`flows.notify.watch_deployments`
    (
        "role",
        lambda text: re.sub(
            rf"(:(?:mod|func|class|meth|data|attr|obj|exc):`~?)({OLD})(?=[.`])", lambda m: m.group(1) + _new(m, 2), text
        ),
    ),
    # `python -m flows.server`, and ["-m", "flows.server"] in code
    (
        "-m",
        lambda text: re.sub(rf"(-m\s+|\"-m\",\s*\")({OLD})(?=\.)", lambda m: m.group(1) + _new(m, 2), text),
    ),
    # A flow's module path in prose: `flows.pipeline.publish` (channels.* in backticks are config keys, left alone)
    ("flow path", lambda text: re.sub(r"(?<=`)flows(?=\.[a-z_]+\.)", RENAMED["flows"], text)),
]

#: Rewrites of one file each: (file, what it says now, what it says after the rename).
SPECIAL: list[tuple[str, str, str]] = [
    ("bench/worker.py", '"channels.', '"carecast_channels.'),
    ("tests/channels/conftest.py", '{"carecast", "channels"}', '{"carecast", "carecast_channels"}'),
    ("tests/channels/conftest.py", "(carecast.*, channels.*)", "(carecast.*, carecast_channels.*)"),
]

MIGRATION_NOTE = """### Upgrading: the built-in channels and the flows are `carecast_channels` and `carecast_flows`

CareCast used to install its `channels/` and `flows/` folders as top-level packages named `channels` and `flows`,
which Django Channels (and any other `channels` or `flows`) would collide with. They are now installed as
`carecast_channels` and `carecast_flows`; the folders have not moved. After upgrading:

- code that imported them imports the new names (`from carecast_channels.x import XChannel`,
  `python -m carecast_flows.postgres`); a channel plugin imports only `carecast.plugin` anyway;
- reinstall (`pip install -e .`, or `make .venv/.installed-test`) so the new names resolve and the old ones go;
- served deployments name their flows by module path: register them again (`carecast deploy`, or restart
  `carecast serve`) so their entrypoints read `carecast_flows.pipeline.publish`.

"""


def _pyproject(text: str) -> str:
    """Entry points, the packages setuptools installs (mapped to the new names) and mypy's packages."""
    text = re.sub(rf'(?m)^(\w[\w-]* = ")({OLD})\.', lambda m: m.group(1) + _new(m, 2) + ".", text)
    packages = ", ".join(f'"{name}"' for name in _packages())
    mapping = ", ".join(f'"{new}" = "{old}"' for old, new in RENAMED.items())
    block = (
        "[tool.setuptools]\n"
        "# The channels/ and flows/ folders are installed under CareCast's own names: no other distribution's\n"
        "# `channels` (Django Channels) or `flows` collides with them. tools/rename_packages.py keeps this list.\n"
        f"package-dir = {{{mapping}}}\n"
        f"packages = [{packages}]\n"
    )
    old_find = re.compile(r"(?m)^\[tool\.setuptools\.packages\.find\]\ninclude = \[[^\]]*\]\n")
    current = re.compile(r"(?m)^\[tool\.setuptools\]\n(?:#.*\n)*package-dir = .*\npackages = \[[^\]]*\]\n")
    text = old_find.sub(lambda _: block, text) if old_find.search(text) else current.sub(lambda _: block, text)
    text = re.sub(
        r'(?m)^packages = \["carecast", "channels", "flows"\]$',
        f'packages = ["carecast", "{RENAMED["channels"]}", "{RENAMED["flows"]}"]\nmypy_path = "{MYPY_LINKS}"',
        text,
    )
    if "[tool.ruff.lint.isort]" not in text:
        # ruff counts a folder of the project as first-party; the new names are no folder.
        first = ", ".join(f'"{name}"' for name in RENAMED.values())
        text = re.sub(
            r"(?m)^(\[tool\.ruff\.lint\]\nselect = .*\n)",
            lambda m: f"{m.group(1)}\n[tool.ruff.lint.isort]\nknown-first-party = [{first}]\n",
            text,
        )
    if "extend-exclude" not in text:
        text = text.replace(
            "[tool.ruff]\nline-length = 120\n", f'[tool.ruff]\nline-length = 120\nextend-exclude = ["{MYPY_LINKS}"]\n'
        )
    return text


def _packages() -> list[str]:
    """Every package of the three folders (a folder with an ``__init__.py``), under its installed name."""
    found = []
    for folder in ("carecast", *RENAMED):
        for init in sorted((ROOT / folder).rglob("__init__.py")):
            parts = list(init.parent.relative_to(ROOT).parts)
            if "__pycache__" in parts:
                continue
            parts[0] = RENAMED.get(parts[0], parts[0])
            found.append(".".join(parts))
    return found


def _readme(text: str) -> str:
    if MIGRATION_NOTE.splitlines()[0] in text:
        return text
    return text.replace("## Development\n", MIGRATION_NOTE + "## Development\n", 1)


def _files() -> list[Path]:
    files = [ROOT / name for name in TOP_FILES]
    for tree in TREES:
        files += [path for path in sorted((ROOT / tree).rglob("*")) if path.suffix in SUFFIXES and path.is_file()]
    return [path for path in files if "__pycache__" not in path.parts and path.exists()]


def _split(line: str) -> tuple[str, str, str] | None:
    """A prose line over the limit cut at its last space that fits: (head, tail, the indent a tail line takes)."""
    indent = line[: len(line) - len(line.lstrip())]
    if line.lstrip().startswith("#"):
        indent += "# "
    cut = line.rfind(" ", len(indent), LIMIT + 1)
    return (line[:cut], line[cut + 1 :], indent) if cut > len(indent) else None


def _reflow(text: str) -> str:
    """Docstring and comment lines over ``LIMIT`` rewrapped: the words past it pushed onto the next line of their
    paragraph (or a new one); a trailing comment after code that is too long goes on a line of its own above it."""
    lines, inside, index = text.split("\n"), False, 0
    while index < len(lines):
        line = lines[index]
        prose = inside or line.lstrip().startswith(("#", '"""', 'r"""'))
        # A directive (noqa, type: ignore) stays on its line.
        if (
            len(line) > LIMIT
            and not prose
            and "  # " in line
            and not line.split("  # ", 1)[1].startswith(("noqa", "type:"))
        ):
            code, comment = line.split("  # ", 1)
            lines[index : index + 1] = [f"{code[: len(code) - len(code.lstrip())]}# {comment}", code]
            continue
        split = _split(line) if len(line) > LIMIT and prose else None
        if split is not None:
            line, tail, indent = split
            after = lines[index + 1] if index + 1 < len(lines) else ""
            rest = after[len(indent) :]
            if after.strip() and after.startswith(indent) and not rest.startswith((" ", '"""', "-", "*")):
                lines[index + 1] = f"{indent}{tail} {rest}"
            else:
                lines.insert(index + 1, indent + tail)
            lines[index] = line
        if line.count('"""') % 2:
            inside = not inside
        index += 1
    return "\n".join(lines)


def rewritten(path: Path, text: str) -> str:
    """``text`` of ``path`` as it reads after the rename."""
    original = text
    for _, rule in RULES:
        text = rule(text)
    relative = path.relative_to(ROOT).as_posix()
    for file, old, new in SPECIAL:
        if relative == file:
            text = text.replace(old, new)
    if path.suffix == ".py" and text != original:
        text = _reflow(text)
    if relative == "pyproject.toml":
        text = _pyproject(text)
    if relative == "README.md":
        text = _readme(text)
    return text


def _links(write: bool) -> list[str]:
    """The links mypy reads the renamed packages through; the ones missing (made when ``write``)."""
    missing = []
    for old, new in RENAMED.items():
        link = ROOT / MYPY_LINKS / new
        if not link.is_symlink():
            missing.append(link.relative_to(ROOT).as_posix())
            if write:
                link.parent.mkdir(exist_ok=True)
                link.symlink_to(Path(os.pardir) / old, target_is_directory=True)
    return missing


def leftovers() -> list[str]:
    """Quoted names that may still be old module paths (``"channels.x"`` exactly, or ``"flows.x:flow"``), for a
    person to read: most are config key paths (``channels.x`` is also the X channel's section)."""
    quoted = re.compile(rf"[\"']({OLD})\.(\w+)(?:[\"':])")
    found = []
    for path in _files():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for match in quoted.finditer(line):
                folder = ROOT / match.group(1)
                if (folder / f"{match.group(2)}.py").exists() or (folder / match.group(2)).is_dir():
                    found.append(f"{path.relative_to(ROOT).as_posix()}:{number}: {line.strip()}")
    return found


def _tidy(files: list[str]) -> None:
    """Sort the rewritten imports and format the files (ruff, from this Python's environment), or say to."""
    ruff = [sys.executable, "-m", "ruff"]
    try:
        subprocess.run([*ruff, "check", "--fix", "--select", "I", "--quiet", *files], cwd=ROOT, check=False)
        subprocess.run([*ruff, "format", "--quiet", *files], cwd=ROOT, check=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        print(f"run ruff check --fix --select I . && ruff format . yourself: {exc}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if anything is left to rewrite")
    args = parser.parse_args(argv)
    changed = []
    for path in _files():
        text = path.read_text(encoding="utf-8")
        new = rewritten(path, text)
        if new != text:
            changed.append(path.relative_to(ROOT).as_posix())
            if not args.check:
                path.write_text(new, encoding="utf-8")
    if changed and not args.check:
        _tidy([name for name in changed if name.endswith(".py")])
    changed += _links(write=not args.check)
    for name in changed:
        print(("to rewrite: " if args.check else "rewritten: ") + name)
    if not changed:
        print("nothing to rewrite: channels/ and flows/ are installed as", ", ".join(RENAMED.values()))
    for line in leftovers():
        print("to read (a module path or a config key?):", line)
    return 1 if args.check and changed else 0


if __name__ == "__main__":
    sys.exit(main())

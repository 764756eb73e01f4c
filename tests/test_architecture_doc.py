"""docs/architecture.md cannot rot silently: every path it names exists, every name it gives beside a file is
in that file's code (not just in a docstring or a comment), every `app.*` module it names exists, and its
layer list is the import-linter contract's, in order (pyproject.toml [tool.importlinter])."""

from __future__ import annotations

import ast
import functools
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "architecture.md"
TOP = frozenset(p.name for p in ROOT.iterdir())  # app, docs, tests, .ci, ...
EXTENSIONS = (".py", ".md", ".toml", ".json", ".png", ".mako", ".ini")
_CODE = re.compile(r"`([^`\n]+)`")
_NAME = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*")
_BLOCK_START = re.compile(r"(?:[-*] |\d+\. |\||#)")


def _prose(text: str) -> str:
    """The doc without its fenced blocks (nothing in them is backticked)."""
    return re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)


def _tokens() -> list[str]:
    return _CODE.findall(_prose(DOC.read_text()))


def _is_path(token: str) -> bool:
    """A repo path: starts at a top-level entry (`app/...`, `.ci/lint`) or is a file name with an extension."""
    token = token.split("::")[0]
    if " " in token or token.startswith("/"):
        return False
    return ("/" in token and token.split("/")[0] in TOP) or token.endswith(EXTENSIONS)


def _exists(token: str) -> bool:
    return any(ROOT.glob(token)) if "*" in token else (ROOT / token).exists()


def _sources(token: str) -> list[Path]:
    """The files a path token names, to look names up in (a glob: every match; a folder: its Python files)."""
    found = sorted(ROOT.glob(token)) if "*" in token else [ROOT / token]
    files = [f for p in found for f in (sorted(p.rglob("*.py")) if p.is_dir() else [p])]
    return [f for f in files if f.is_file() and f.suffix != ".png"]


@functools.cache
def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text())


@functools.cache
def _code_names(path: Path) -> frozenset[str]:
    """Every name a Python file's code uses or defines, and its identifier-like string constants (event names);
    docstrings and comments do not count. Other files: their words."""
    if path.suffix != ".py":
        return frozenset(re.findall(r"\w+", path.read_text()))
    names: set[str] = set()
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.Name):
            names.add(node.id)
        elif isinstance(node, ast.Attribute):
            names.add(node.attr)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.arg | ast.keyword) and node.arg:
            names.add(node.arg)
        elif isinstance(node, ast.alias):
            names.add(node.asname or node.name.split(".")[0])
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.isidentifier():
            names.add(node.value)
    return frozenset(names)


@functools.cache
def _members(owner: str) -> frozenset[str]:
    """What class `owner` (defined somewhere under app/) defines: methods, class attributes, `self.x = ...`."""
    for path in sorted((ROOT / "app").rglob("*.py")):
        for node in ast.walk(_tree(path)):
            if isinstance(node, ast.ClassDef) and node.name == owner:
                found: set[str] = set()
                for inner in ast.walk(node):
                    if isinstance(inner, ast.FunctionDef | ast.AsyncFunctionDef):
                        found.add(inner.name)
                    elif isinstance(inner, ast.Name) and isinstance(inner.ctx, ast.Store):
                        found.add(inner.id)
                    elif isinstance(inner, ast.Attribute) and isinstance(inner.ctx, ast.Store):
                        found.add(inner.attr)
                return frozenset(found)
    return frozenset()


def _blocks(text: str) -> list[str]:
    """Paragraphs, list items and table rows: a name is looked for in the files of its own block."""
    blocks: list[list[str]] = [[]]
    for line in _prose(text).splitlines():
        if not line.strip() or _BLOCK_START.match(line):
            blocks.append([])
        blocks[-1].append(line)
    return ["\n".join(b) for b in blocks if "".join(b).strip()]


def _module_file(dotted: str) -> tuple[Path | None, list[str]]:
    """The longest `app.x.y` prefix that is a module or package, and the attribute names left over."""
    parts = dotted.split(".")
    for n in range(len(parts), 0, -1):
        base = ROOT.joinpath(*parts[:n])
        for candidate in (base.with_suffix(".py"), base / "__init__.py"):
            if candidate.exists():
                return candidate, parts[n:]
    return None, parts


def test_every_path_exists() -> None:
    paths = [t for t in _tokens() if _is_path(t)]
    assert len(paths) > 50  # the parser still finds the doc's paths
    missing = [t for t in paths if not _exists(t.split("::")[0])]
    assert not missing, f"docs/architecture.md names paths that do not exist: {missing}"
    for token in (t for t in paths if "::" in t):  # a test named by its file
        path, name = token.split("::")
        assert name in _code_names(ROOT / path), token


def test_every_app_module_exists() -> None:
    dotted = [t for t in _tokens() if t.startswith("app.")]
    assert dotted
    for token in dotted:
        module = token.split(" ")[0].rstrip(".*")
        path, rest = _module_file(module)
        assert path is not None, f"{token}: no such module"
        for name in rest:
            assert name in _code_names(path), f"{token}: {name} is not in {path}"


def test_every_name_is_in_the_code_beside_it() -> None:
    """A name in a list item, paragraph or table row that names files (`_relay_whole` beside
    `app/proxy/pipeline.py`) must be in the code of one of those files; a `Class.member` must be defined by
    that class. A renamed or deleted function breaks this test, not the newcomer reading the doc."""
    checked, stale = 0, []
    for block in _blocks(DOC.read_text()):
        tokens = _CODE.findall(block)
        files = [f for t in tokens if _is_path(t) for f in _sources(t.split("::")[0])]
        for token in tokens:
            name = token.removesuffix("()")
            if _is_path(token) or token.startswith("app.") or not _NAME.fullmatch(name):
                continue
            owner, _, member = name.rpartition(".")
            if owner[:1].isupper():  # Pipeline._forward: a member of class Pipeline
                checked += 1
                if member not in _members(owner):
                    stale.append(f"{token} (class {owner})")
            elif files:
                checked += 1
                if not any(member in _code_names(f) for f in files):
                    stale.append(f"{token} ({', '.join(str(f.relative_to(ROOT)) for f in files[:4])})")
    assert checked > 50  # the parser still finds the doc's names
    assert not stale, "names in docs/architecture.md not found in the code beside them:\n" + "\n".join(stale)


def test_the_layers_are_the_import_linter_contract() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    layers = next(c for c in config["contracts"] if c["type"] == "layers")["layers"]
    section = DOC.read_text().split("\n## Layers\n", 1)[1]
    block = re.search(r"^```\n(.*?)^```", section, flags=re.S | re.M)
    assert block is not None, "the Layers section opens with the layer list in a code block"
    assert block.group(1).splitlines() == layers
    forbidden = next(c for c in config["contracts"] if c["type"] == "forbidden")
    prose = _prose(DOC.read_text())
    for name in (*forbidden["forbidden_modules"], *forbidden["ignore_imports"]):
        assert f"`{name}`" in prose, f"docs/architecture.md does not name {name}"

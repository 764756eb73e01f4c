"""docs/architecture.md cannot rot silently: every path it names exists, every name it gives next to a file
is found in that file, every `app.*` module it names exists, and its layer list is the import-linter
contract's, in order (pyproject.toml [tool.importlinter])."""

from __future__ import annotations

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


def _is_path(token: str) -> bool:
    """A repo path: starts at a top-level entry (`app/...`, `.ci/lint`) or is a file name with an extension."""
    token = token.split("::")[0]
    if " " in token or token.startswith("/"):
        return False
    return token.split("/")[0] in TOP and "/" in token or token.endswith(EXTENSIONS)


def _exists(token: str) -> bool:
    return any(ROOT.glob(token)) if "*" in token else (ROOT / token).exists()


def _sources(token: str) -> list[Path]:
    """The files a path token names, to look names up in (a glob: every match; a folder: its Python files)."""
    found = sorted(ROOT.glob(token)) if "*" in token else [ROOT / token]
    files = [f for p in found for f in (sorted(p.rglob("*.py")) if p.is_dir() else [p])]
    return [f for f in files if f.is_file() and f.suffix != ".png"]


@functools.cache
def _class_file(name: str) -> Path | None:
    """The module under app/ that defines class `name`."""
    pattern = re.compile(rf"^class {re.escape(name)}\b", re.M)
    return next((f for f in sorted((ROOT / "app").rglob("*.py")) if pattern.search(f.read_text())), None)


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
    tokens = [t for t in _CODE.findall(_prose(DOC.read_text())) if _is_path(t)]
    assert len(tokens) > 50  # the parser still finds the doc's paths
    missing = [t for t in tokens if not _exists(t.split("::")[0])]
    assert not missing, f"docs/architecture.md names paths that do not exist: {missing}"
    for token in (t for t in tokens if "::" in t):  # a test named by its file
        path, name = token.split("::")
        assert re.search(rf"\b{re.escape(name)}\b", (ROOT / path).read_text()), token


def test_every_app_module_exists() -> None:
    dotted = [t for t in _CODE.findall(_prose(DOC.read_text())) if t.startswith("app.")]
    assert dotted
    for token in dotted:
        module = token.split(" ")[0].rstrip(".*")
        path, rest = _module_file(module)
        assert path is not None, f"{token}: no such module"
        for name in rest:
            assert re.search(rf"\b{re.escape(name)}\b", path.read_text()), f"{token}: {name} not in {path}"


def _word(name: str, text: str) -> bool:
    return re.search(rf"\b{re.escape(name)}\b", text) is not None


def test_every_name_is_in_the_files_of_its_block() -> None:
    """A name next to files (`_relay_whole` in the list item that names `app/proxy/pipeline.py`) must still be
    in one of the files its list item, paragraph or table row names; a `Class.member` must be in the module
    that defines the class. A renamed or deleted function breaks this test, not the reader."""
    checked = 0
    stale = []
    for block in _blocks(DOC.read_text()):
        tokens = _CODE.findall(block)
        files = [f for t in tokens if _is_path(t) for f in _sources(t.split("::")[0])]
        source = "\n".join(f.read_text() for f in files)
        for token in tokens:
            name = token.removesuffix("()")
            if _is_path(token) or token.startswith("app.") or not _NAME.fullmatch(name):
                continue
            owner, _, member = name.rpartition(".")
            if owner and owner[0].isupper():  # Pipeline._forward: in the module of class Pipeline
                defined = _class_file(owner)
                checked += 1
                if defined is None or not _word(member, defined.read_text()):
                    stale.append((token, "class " + owner))
            elif files:
                checked += 1
                if not _word(member, source):
                    stale.append((token, ", ".join(str(f.relative_to(ROOT)) for f in files)))
    assert checked > 50
    assert not stale, f"names in docs/architecture.md not found in the files beside them: {stale}"


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

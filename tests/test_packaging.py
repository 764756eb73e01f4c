"""Packaging: the wheel carries everything the app needs (built, installed in a fresh virtual environment
and run), the package list in pyproject is complete, resources are found in every layout, the PyInstaller
spec collects what Alembic and the page loader need, and the Linux desktop files are valid and agree with
the autostart entry. The PyInstaller build itself is `python packaging/build.py`; its output, when present,
is smoke-tested here too."""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
import time
import tomllib
import venv
import zipfile
from pathlib import Path
from typing import Any

import pytest

from app import __version__, paths

ROOT = Path(__file__).resolve().parent.parent
PACKAGING = ROOT / "packaging"
sys.path.insert(0, str(PACKAGING))
from smoke import run_smoke  # noqa: E402

# Read before the autouse fixture points HOME and XDG folders into a temp dir: dependency wheels are kept
# between runs here, because this machine's pip cannot cache downloads (see packaging/README.md).
WHEELHOUSE = Path(
    os.environ.get("DOWNSHIFT_WHEELHOUSE")
    or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "downshift-tests" / "wheelhouse"
)
FROZEN = Path(os.environ.get("DOWNSHIFT_FROZEN_APP") or ROOT / "dist" / "downshift" / "downshift")


def pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


# ------------------------------------------------------------------------------------------ package list


def test_every_package_is_listed_in_pyproject() -> None:
    setuptools = pyproject()["tool"]["setuptools"]
    listed = set(setuptools["packages"])
    on_disk = {
        ".".join(p.parent.relative_to(ROOT).parts)
        for p in (ROOT / "app").rglob("__init__.py")
        if "__pycache__" not in p.parts
    }
    resources = {"app.resources"} | {
        "app.resources." + ".".join(d.relative_to(ROOT / "resources").parts)
        for d in (ROOT / "resources").rglob("*")
        if d.is_dir()
    }
    missing = (on_disk | resources) - listed
    assert not missing, f"add these to [tool.setuptools] packages in pyproject.toml: {sorted(missing)}"
    assert not listed - on_disk - resources, "pyproject lists packages that do not exist"
    assert setuptools["package-dir"] == {"app.resources": "resources"}


# ------------------------------------------------------------------------------------------ resources


def test_resources_are_found_in_a_checkout_a_wheel_and_a_frozen_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert paths.resources_dir() == ROOT / "resources"  # a checkout: the top-level folder

    def make(folder: Path) -> Path:
        folder.mkdir(parents=True)
        (folder / paths.RESOURCE_MARKER).write_text("{}")
        return folder

    site = tmp_path / "site-packages"
    (site / "resources").mkdir(parents=True)  # someone else's top-level folder, without the marker
    wheel_res = make(site / "app" / "resources")
    monkeypatch.setattr(paths, "__file__", str(site / "app" / "paths.py"))
    assert paths.resources_dir() == wheel_res  # an installed wheel: app/resources
    frozen = make(tmp_path / "_MEIPASS" / "resources")
    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path / "_MEIPASS"), raising=False)
    assert paths.resources_dir() == frozen  # PyInstaller: sys._MEIPASS/resources comes first
    monkeypatch.setattr(paths, "__file__", str(tmp_path / "nowhere" / "app" / "paths.py"))
    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path / "empty"), raising=False)
    with pytest.raises(FileNotFoundError, match="looked in"):
        paths.resources_dir()


# ------------------------------------------------------------------------------------------ PyInstaller spec


class _Recorder:
    """Stands in for PyInstaller's build targets: records what the spec passes them."""

    calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    def __init__(self, name: str) -> None:
        self.name = name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        _Recorder.calls.append((self.name, args, kwargs))
        return type("Target", (), {"pure": [], "scripts": [], "binaries": [], "datas": []})()


def test_spec_collects_resources_migrations_and_every_app_module(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip(
        "PyInstaller", reason="PyInstaller is installed only to build: pip install pyinstaller"
    )
    _Recorder.calls = []
    spec = PACKAGING / "downshift.spec"
    names = {n: _Recorder(n) for n in ("Analysis", "PYZ", "EXE", "COLLECT", "BUNDLE")}
    exec(
        compile(spec.read_text(), str(spec), "exec"),
        {"SPECPATH": str(PACKAGING), "__name__": "spec", **names},
    )
    analysis = next(kw for name, _a, kw in _Recorder.calls if name == "Analysis")
    targets = {Path(src).relative_to(ROOT).as_posix(): dest for src, dest in analysis["datas"]}
    assert targets["resources"] == "resources"  # where app.paths looks in a frozen build
    assert targets["app/core/storage/migrations"] == "app/core/storage/migrations"  # next to db.py
    assert {"app.ui.pages.dashboard", "app.ui.first_run", "app.demo.agent", "app.doctor"} <= set(
        analysis["hiddenimports"]
    )
    exes = [kw["name"] for name, _a, kw in _Recorder.calls if name == "EXE"]
    assert "downshift" in exes
    assert (PACKAGING / "entry.py").read_text().count("main()") == 1


# ------------------------------------------------------------------------------------------ desktop files


def _desktop(text: str) -> dict[str, str]:
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # type: ignore[assignment, method-assign]
    parser.read_string(text)
    return dict(parser["Desktop Entry"])


def test_desktop_file_agrees_with_the_autostart_entry() -> None:
    from app.core import autostart

    ours = _desktop((PACKAGING / "linux" / "downshift.desktop").read_text())
    written = _desktop(autostart.desktop_entry(["/usr/bin/downshift"]))
    for key in ("Type", "Name", "Comment", "Icon", "Terminal"):
        assert ours[key] == written[key], key
    assert ours["Exec"] == "downshift" and autostart.FILE_NAME == "downshift.desktop"
    metainfo = (PACKAGING / "linux" / "io.downshift.Downshift.metainfo.xml").read_text()
    assert '<launchable type="desktop-id">downshift.desktop</launchable>' in metainfo
    assert f'<release version="{__version__}"' in metainfo  # bump it with app.__version__
    assert f"## [{__version__}]" in (ROOT / "CHANGELOG.md").read_text()


@pytest.mark.parametrize(
    ("tool", "args", "target"),
    [
        ("desktop-file-validate", [], "downshift.desktop"),
        ("appstreamcli", ["validate", "--no-net", "--pedantic"], "io.downshift.Downshift.metainfo.xml"),
    ],
)
def test_linux_files_pass_the_freedesktop_validators(tool: str, args: list[str], target: str) -> None:
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed (Debian: desktop-file-utils, appstream)")
    done = subprocess.run([tool, *args, str(PACKAGING / "linux" / target)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_install_script_is_valid_shell() -> None:
    done = subprocess.run(
        ["sh", "-n", str(PACKAGING / "linux" / "install.sh")], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


# ------------------------------------------------------------------------------------------ wheel round trip

REQUIRED_IN_WHEEL = (
    "app/resources/prices.json",
    "app/resources/cl100k_base.tiktoken.gz",
    "app/resources/icons/downshift.svg",
    "app/core/storage/migrations/env.py",
    "app/core/storage/migrations/script.py.mako",
    "app/core/storage/migrations/versions/0001_initial.py",
    "app/testing/mock_upstream.py",
    "app/ui/first_run.py",
)


def runtime_requirements(wheel: Path) -> list[str]:
    """The wheel's own Requires-Dist (extras left out). Only these go to the wheelhouse: a downshift wheel
    kept there would be reused by `pip download` with its old requirements."""
    with zipfile.ZipFile(wheel) as zf:
        metadata = zf.read(next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))).decode()
    return [
        line.split(":", 1)[1].strip()
        for line in metadata.splitlines()
        if line.startswith("Requires-Dist:") and "extra ==" not in line
    ]


def _pip(python: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(python), "-m", "pip", "--disable-pip-version-check", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_wheel_round_trip_in_a_fresh_virtualenv(tmp_path: Path) -> None:
    """Build the wheel from this checkout, install it (and its dependencies, no system site-packages) in a
    new virtual environment, and run the installed `downshift` far away from the checkout.

    Slow: about 55 s with the wheelhouse filled, about 140 s on a first run, which downloads 121 MB of
    dependency wheels into it (see packaging/README.md, "The wheel")."""
    timings: dict[str, float] = {}
    started = time.monotonic()
    out = tmp_path / "dist"
    built = _pip(Path(sys.executable), "wheel", str(ROOT), "--no-deps", "-w", str(out))
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-4000:]
    wheel = next(out.glob("downshift-*.whl"))
    timings["build"] = time.monotonic() - started
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
    missing = [n for n in REQUIRED_IN_WHEEL if n not in names]
    assert not missing, f"missing from {wheel.name}: {missing}"
    assert not any(n.startswith(("tests/", "bench/", "resources/")) for n in names)

    started = time.monotonic()
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True, system_site_packages=False).create(env_dir)
    python = env_dir / ("Scripts" if sys.platform == "win32" else "bin") / "python"
    WHEELHOUSE.mkdir(parents=True, exist_ok=True)
    local = ("--no-index", "--find-links", str(WHEELHOUSE), str(wheel))
    installed = _pip(python, "install", *local)
    if installed.returncode != 0:  # first run, or a dependency changed: fill the wheelhouse, then again
        fetched = _pip(python, "download", "-d", str(WHEELHOUSE), *runtime_requirements(wheel))
        assert fetched.returncode == 0, fetched.stderr[-4000:]
        installed = _pip(python, "install", *local)
    assert installed.returncode == 0, installed.stdout[-2000:] + installed.stderr[-4000:]
    timings["install"] = time.monotonic() - started
    shown = _pip(python, "show", "-f", "downshift")
    assert "app/resources/prices.json" in shown.stdout and str(ROOT) not in shown.stdout

    started = time.monotonic()
    script = python.parent / ("downshift.exe" if sys.platform == "win32" else "downshift")
    passed = run_smoke([str(script)], demo=True, gui=False, say=lambda _line: None)
    timings["smoke"] = time.monotonic() - started
    assert passed[0] == f"downshift {__version__}"
    print(
        f"wheel round trip: {', '.join(f'{k} {v:.0f} s' for k, v in timings.items())}; "
        f"total {sum(timings.values()):.0f} s; " + "; ".join(passed)
    )


# ------------------------------------------------------------------------------------------ frozen build


@pytest.mark.timeout(600)
def test_pyinstaller_build_smoke() -> None:
    """The one-folder build from `python packaging/build.py`, when it has been built on this machine."""
    if not FROZEN.exists():
        pytest.skip(
            f"no PyInstaller build at {FROZEN}: run `python packaging/build.py` (takes about 3 minutes)"
        )
    passed = run_smoke([str(FROZEN)], demo=True, gui=True, say=lambda _line: None)
    assert any(step.startswith("GUI offscreen") for step in passed)
    assert "_internal/resources" in next(step for step in passed if step.startswith("doctor"))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="install.sh is the Linux installer")
def test_linux_install_script_installs_and_uninstalls_the_build(tmp_path: Path) -> None:
    if not (FROZEN.parent / "install.sh").exists():
        pytest.skip(f"no PyInstaller build at {FROZEN.parent}: run `python packaging/build.py`")
    env = {**os.environ, "PREFIX": str(tmp_path / "prefix")}
    done = subprocess.run(
        ["sh", str(FROZEN.parent / "install.sh")], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    prefix = tmp_path / "prefix"
    version = subprocess.run(
        [str(prefix / "bin" / "downshift"), "--version"], capture_output=True, text=True, timeout=60
    )
    assert version.stdout.strip() == f"downshift {__version__}"
    entry = _desktop((prefix / "share" / "applications" / "downshift.desktop").read_text())
    assert entry["Exec"] == f"{prefix}/bin/downshift"
    assert (prefix / "share" / "icons" / "hicolor" / "256x256" / "apps" / "downshift.png").is_file()
    assert (prefix / "share" / "metainfo" / "io.downshift.Downshift.metainfo.xml").is_file()
    done = subprocess.run(
        ["sh", str(prefix / "lib" / "downshift" / "install.sh"), "--uninstall"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert not (prefix / "bin" / "downshift").exists() and not (prefix / "lib" / "downshift").exists()
    assert not list((prefix / "share").rglob("downshift*"))


def test_icons_are_rendered_at_the_usual_sizes_from_the_svg(qapp, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import importlib.util

    from PySide6.QtGui import QImage

    spec = importlib.util.spec_from_file_location(
        "downshift_build", PACKAGING / "build.py"
    )  # not PyPA's `build`
    assert spec is not None and spec.loader is not None
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    ICON_SIZES, render_icons = build.ICON_SIZES, build.render_icons
    written = render_icons(ROOT / "resources" / "icons" / "downshift.svg", tmp_path)
    for size in ICON_SIZES:
        image = QImage(str(tmp_path / "hicolor" / f"{size}x{size}" / "apps" / "downshift.png"))
        assert (image.width(), image.height()) == (size, size)
        assert image.pixelColor(size // 2, size // 2).alpha() == 255  # drawn, not an empty canvas
        assert image.pixelColor(0, 0).alpha() < 255  # rounded corners stay transparent
    assert (tmp_path / "hicolor" / "scalable" / "apps" / "downshift.svg").read_bytes() == (
        ROOT / "resources" / "icons" / "downshift.svg"
    ).read_bytes()
    assert tmp_path / "downshift.ico" in written  # for the Windows build

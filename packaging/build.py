"""Build the desktop application with PyInstaller, then prove it works.

    python packaging/build.py              # icons, PyInstaller one-folder build, desktop files, smoke test
    python packaging/build.py --skip-build # smoke-test an existing dist/downshift
    python packaging/build.py --no-smoke   # build only

Output: dist/downshift/ (run dist/downshift/downshift). On Linux the folder also gets share/ with the
.desktop file, the AppStream metainfo and the icons in the freedesktop layout, and install.sh copies it
all under ~/.local (or PREFIX). Needs PyInstaller in the environment: `pip install pyinstaller`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGING = ROOT / "packaging"
DIST = ROOT / "dist"
BUILD = ROOT / "build"
ICON_SIZES = (16, 22, 24, 32, 48, 64, 128, 256, 512)
APP_ID = "io.downshift.Downshift"


def render_icons(svg: Path, out: Path) -> list[Path]:
    """PNGs at the usual sizes (freedesktop layout), plus .ico and .icns for the other systems' builds."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # drawing needs no screen
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication, QImage, QImageWriter, QPainter
    from PySide6.QtSvg import QSvgRenderer

    _app = QGuiApplication.instance() or QGuiApplication([sys.argv[0]])
    renderer = QSvgRenderer(str(svg))
    if not renderer.isValid():
        raise SystemExit(f"build: {svg} is not a valid SVG")

    def image(size: int) -> QImage:
        img = QImage(size, size, QImage.Format.Format_ARGB32)
        img.fill(Qt.GlobalColor.transparent)
        painter = QPainter(img)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        renderer.render(painter)
        painter.end()
        return img

    written = []
    for size in ICON_SIZES:
        target = out / "hicolor" / f"{size}x{size}" / "apps" / "downshift.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        if not image(size).save(str(target)):
            raise SystemExit(f"build: could not write {target}")
        written.append(target)
    scalable = out / "hicolor" / "scalable" / "apps" / "downshift.svg"
    scalable.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(svg, scalable)
    written.append(scalable)
    formats = {bytes(f.data()).decode() for f in QImageWriter.supportedImageFormats()}
    for fmt, size in (("ico", 256), ("icns", 512)):
        if fmt in formats and image(size).save(str(out / f"downshift.{fmt}"), fmt):
            written.append(out / f"downshift.{fmt}")
    return written


def pyinstaller() -> float:
    try:
        import PyInstaller  # noqa: F401
    except ImportError:
        raise SystemExit(
            "build: PyInstaller is not installed here: python -m pip install pyinstaller"
        ) from None
    started = time.monotonic()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "PyInstaller",
            "--noconfirm",
            "--clean",
            "--log-level",
            "WARN",
            "--distpath",
            str(DIST),
            "--workpath",
            str(BUILD / "pyinstaller"),
            str(PACKAGING / "downshift.spec"),
        ],
        check=True,
        cwd=ROOT,
    )
    return time.monotonic() - started


def linux_desktop_files(app_dir: Path, icons: Path) -> None:
    """share/ in the freedesktop layout, inside the app folder, for install.sh (or a distro package)."""
    share = app_dir / "share"
    (share / "applications").mkdir(parents=True, exist_ok=True)
    (share / "metainfo").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(PACKAGING / "linux" / "downshift.desktop", share / "applications" / "downshift.desktop")
    shutil.copyfile(
        PACKAGING / "linux" / f"{APP_ID}.metainfo.xml", share / "metainfo" / f"{APP_ID}.metainfo.xml"
    )
    shutil.copytree(icons / "hicolor", share / "icons" / "hicolor", dirs_exist_ok=True)
    shutil.copyfile(PACKAGING / "linux" / "install.sh", app_dir / "install.sh")
    (app_dir / "install.sh").chmod(0o755)


def validate_linux_files() -> list[str]:
    """Run the freedesktop validators that are installed; a missing tool is reported, not fatal."""
    notes = []
    for tool, args in (
        ("desktop-file-validate", [PACKAGING / "linux" / "downshift.desktop"]),
        (
            "appstreamcli",
            ["validate", "--no-net", "--pedantic", PACKAGING / "linux" / f"{APP_ID}.metainfo.xml"],
        ),
    ):
        if shutil.which(tool) is None:
            notes.append(f"{tool} not installed: not validated")
            continue
        done = subprocess.run([tool, *map(str, args)], capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"build: {tool} found problems:\n{done.stdout}{done.stderr}")
        notes.append(f"{tool}: valid")
    return notes


def folder_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build Downshift with PyInstaller and smoke-test it.")
    parser.add_argument(
        "--skip-build", action="store_true", help="only smoke-test the existing dist/downshift"
    )
    parser.add_argument("--no-smoke", action="store_true", help="build only")
    args = parser.parse_args(argv)
    app_dir = DIST / "downshift"
    exe = app_dir / ("downshift.exe" if sys.platform == "win32" else "downshift")
    if not args.skip_build:
        icons = render_icons(ROOT / "resources" / "icons" / "downshift.svg", BUILD / "icons")
        print(f"icons: {len(icons)} files in {BUILD / 'icons'}")
        seconds = pyinstaller()
        if sys.platform.startswith("linux"):
            linux_desktop_files(app_dir, BUILD / "icons")
            for note in validate_linux_files():
                print(note)
        print(f"built {app_dir} in {seconds:.0f} s: {folder_size(app_dir) / 1e6:.0f} MB")
    if not exe.exists():
        raise SystemExit(f"build: {exe} does not exist; build it first")
    if args.no_smoke:
        return 0
    sys.path.insert(0, str(PACKAGING))
    from smoke import main as smoke

    print(f"smoke test of {exe}:")
    return smoke([str(exe), "--gui"])


if __name__ == "__main__":
    raise SystemExit(main())

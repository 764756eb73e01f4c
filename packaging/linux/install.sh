#!/bin/sh
# Install the one-folder build for this user, or system-wide with PREFIX=/usr/local (as root):
# the app under $PREFIX/lib/downshift, `downshift` in $PREFIX/bin, the menu entry, AppStream data and icons.
#   ./install.sh               install (or update) from this folder
#   ./install.sh --uninstall   remove what install put there (your config and call log stay)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
prefix=${PREFIX:-$HOME/.local}
app="$prefix/lib/downshift"
share="$prefix/share"
files="applications/downshift.desktop metainfo/io.downshift.Downshift.metainfo.xml"

if [ "${1:-}" = "--uninstall" ]; then
    rm -rf "$app" "$prefix/bin/downshift"
    for f in $files; do rm -f "$share/$f"; done
    find "$share/icons/hicolor" -name 'downshift.*' -path '*/apps/*' -delete 2>/dev/null || true
    echo "removed Downshift from $prefix"
    exit 0
fi

[ -x "$here/downshift" ] || { echo "install.sh: run it from the built folder (dist/downshift)" >&2; exit 1; }
mkdir -p "$prefix/lib" "$prefix/bin" "$share/applications" "$share/metainfo"
if [ "$here" != "$app" ]; then
    rm -rf "$app"
    cp -R "$here" "$app"
fi
ln -sf "$app/downshift" "$prefix/bin/downshift"
# The menu entry runs this installation even when $prefix/bin is not on the desktop session's PATH.
sed "s|^Exec=downshift|Exec=$prefix/bin/downshift|" "$here/share/applications/downshift.desktop" \
    > "$share/applications/downshift.desktop"
cp "$here/share/metainfo/io.downshift.Downshift.metainfo.xml" "$share/metainfo/"
cp -R "$here/share/icons" "$share/"
command -v update-desktop-database >/dev/null 2>&1 && update-desktop-database -q "$share/applications" || true
command -v gtk-update-icon-cache >/dev/null 2>&1 && gtk-update-icon-cache -q -t "$share/icons/hicolor" || true
echo "installed $prefix/bin/downshift and its menu entry"

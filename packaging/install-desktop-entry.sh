#!/usr/bin/env bash
# Adds EMViewer to the desktop menu of the current user (Linux, freedesktop.org).
# Run from the repository root after the set-up command of the README.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
apps="${XDG_DATA_HOME:-$HOME/.local/share}/applications"
icons="${XDG_DATA_HOME:-$HOME/.local/share}/icons/hicolor/256x256/apps"
mkdir -p "$apps" "$icons"
cp "$root/resources/icons/emviewer.png" "$icons/emviewer.png"
sed "s|^Exec=emviewer|Exec=$root/.venv/bin/emviewer|" "$root/packaging/emviewer.desktop" > "$apps/emviewer.desktop"
echo "installed $apps/emviewer.desktop"

#!/usr/bin/env bash
# Install the pinned real agents that tests/test_real_*.py drive: Codex CLI, Claude Code, OpenCode, Qwen Code,
# Cline CLI and Continue CLI from npm
# (tests/agents/node, exactly as package-lock.json says) and aider in a venv of its own (tests/agents/aider-venv,
# from aider-requirements.txt). Idempotent and cheap on a second run: each part is redone only when its pin
# file changed since the last successful install. Needs node/npm and python3 (3.10 to 3.12 for aider).
#   bash tests/agents/install.sh [node|aider]...   (default: both)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
parts=("$@")
[ ${#parts[@]} -eq 0 ] && parts=(node aider)

# A part is current when the stamp left by its last install names the same pin file hash.
current() { [ -f "$2" ] && [ "$(cat "$2")" = "$(sha256sum "$1" | cut -d' ' -f1)" ]; }
stamp() { sha256sum "$1" | cut -d' ' -f1 > "$2"; }

for part in "${parts[@]}"; do
  start=$SECONDS
  case "$part" in
    node)
      lock="$here/node/package-lock.json"; mark="$here/node/node_modules/.downshift-installed"
      if current "$lock" "$mark"; then echo "agents: node packages current"; continue; fi
      # `npm install` of the lock, not `npm ci`: npm writes no entries for other platforms' optional binaries
      # (opencode-darwin-*, @cline/cli-windows-* ...) into a lock made on Linux, and `npm ci` then refuses
      # the lock as out of sync. `--no-save` keeps the lock as committed; versions come from it.
      rm -rf "$here/node/node_modules"
      npm install --prefix "$here/node" --no-save --no-audit --no-fund --loglevel=error
      stamp "$lock" "$mark"
      ;;
    aider)
      reqs="$here/aider-requirements.txt"; venv="$here/aider-venv"; mark="$venv/.downshift-installed"
      if current "$reqs" "$mark"; then echo "agents: aider venv current"; continue; fi
      rm -rf "$venv"
      "${PYTHON:-python3}" -m venv "$venv"
      # (the grep drops pip's notes about index locations this machine's pip.conf lists but lacks)
      "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$reqs" \
        2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
      stamp "$reqs" "$mark"
      ;;
    *) echo "install.sh: unknown part '$part' (node, aider)" >&2; exit 2 ;;
  esac
  echo "agents: $part installed in $((SECONDS - start)) s"
done

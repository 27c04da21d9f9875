#!/usr/bin/env bash
# Create .venv in this checkout (once) and install mmoe into it, pinned by constraints.txt.
# Usage: bash scripts/install.sh [EXTRAS]     e.g. bash scripts/install.sh dev
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || "${PYTHON:-python3}" -m venv .venv
spec="."
[ -n "${1:-}" ] && spec=".[$1]"
.venv/bin/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e "$spec"

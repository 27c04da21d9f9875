#!/usr/bin/env bash
# Packaging check: build a wheel from this checkout, install it into a fresh virtual environment
# OUTSIDE the checkout (pinned by constraints.txt), and run the installed `mmoe` from another
# directory: --version, `paper census --help`, `config list`, and `train` on a shipped config
# referenced by name (the synthetic one, shrunk to seconds). Prints each step and "wheel ok".
# Usage: bash scripts/check_wheel.sh [WORKDIR]    (default: a new temporary directory)
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="${1:-$(mktemp -d)}"
mkdir -p "$work"
echo "== building the wheel into $work/dist"
"$repo/.venv/bin/python" -m pip wheel --quiet --no-deps --disable-pip-version-check \
  -w "$work/dist" "$repo"
wheel="$(ls "$work"/dist/mmoe-*.whl)"
echo "== $(basename "$wheel"): $(unzip -l "$wheel" | grep -c 'mmoe/configs/.*\.yaml') config files, $(unzip -l "$wheel" | grep -c 'mmoe/py.typed') py.typed"
echo "== fresh environment $work/venv"
"${PYTHON:-python3}" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install --quiet --disable-pip-version-check \
  -c "$repo/constraints.txt" "$wheel"
cd "$work"  # nothing of the checkout is reachable from here
echo "== mmoe --version"; "$work/venv/bin/mmoe" --version
echo "== mmoe paper census --help"; "$work/venv/bin/mmoe" paper census --help | head -5
echo "== mmoe config list"; "$work/venv/bin/mmoe" config list
echo "== mmoe train synthetic-mmoe (shipped config, by name)"
"$work/venv/bin/mmoe" train synthetic-mmoe --set data.num_train=2000 --set data.num_valid=500 \
  --set data.num_test=500 --set training.epochs=1 --out "$work/run" --quiet
"$work/venv/bin/python" -c "import importlib.resources as r; p = r.files('mmoe') / 'configs' / 'census' / 'group1-mmoe.yaml'; assert p.is_file(), p; print('importlib.resources:', p)"
echo "wheel ok"

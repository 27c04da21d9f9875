#!/usr/bin/env bash
# The whole test suite: install mmoe with its dev tools into .venv, lint, check formatting, and run
# pytest (unit, end-to-end and docstring examples). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh dev
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/pytest -q "$@"

#!/usr/bin/env bash
# The main job: install mmoe into .venv, train MMoE on the built-in synthetic two-task data
# (Ma et al., KDD 2018, §3.2) and print per-task metrics. Extra arguments go to `mmoe train`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
.venv/bin/mmoe train configs/synthetic-mmoe.yaml --out runs/demo --overwrite "$@"

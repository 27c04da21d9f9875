#!/usr/bin/env bash
# The main job: install mmoe (with its plotting extra) into .venv and run the quick profile of the
# paper's synthetic task-correlation study (Ma et al., KDD 2018, §3.2): Shared-Bottom, OMoE and
# MMoE at task correlations 1.0, 0.9 and 0.5 on built-in generated data, about two minutes on two
# cores. Prints the loss table; figures go to runs/paper-synthetic-quick/.
# Extra arguments go to `mmoe paper synthetic`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh plot
.venv/bin/mmoe paper synthetic --quick --out runs/paper-synthetic-quick "$@"

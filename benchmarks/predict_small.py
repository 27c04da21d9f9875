"""`TrainedModel.predict` rows/s on 1 and 256 census rows: this checkout against another one.

Each measurement is a fresh process importing mmoe from one source tree (this checkout's
``src`` or ``--before-src``, e.g. a ``git worktree`` of an older commit), scoring the same run
directory's model for 3 s per size; the two trees alternate for ``--rounds`` rounds so machine
drift hits both, and the medians are printed.

    git worktree add /tmp/before HEAD~1
    python benchmarks/predict_small.py runs/g1 --before-src /tmp/before/src --rounds 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import json, sys, time, warnings
sys.path.insert(0, SRC)
import mmoe
from pathlib import Path
from mmoe.data.census import read_census_file
warnings.simplefilter("ignore")
trained = mmoe.load(RUN)
files = Path(trained.config.data.data_dir).glob("census-income.test*")
table = read_census_file(next(files)).slice(0, 256)
out = {}
for n in (1, 256):
    frame = table.slice(0, n).to_pandas()
    for _ in range(5):
        trained.predict(frame)
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < 3:
        trained.predict(frame)
        calls += 1
    out[n] = calls * n / (time.perf_counter() - start)
print(json.dumps(out))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--before-src", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    trees = {"before": args.before_src, "after": Path(__file__).parents[1] / "src"}
    results: dict[str, list[dict[str, float]]] = {"before": [], "after": []}
    for _ in range(args.rounds):
        for name, src in trees.items():
            code = f"SRC={str(src.resolve())!r}\nRUN={str(args.run_dir)!r}\n" + CHILD
            done = subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, check=True
            )
            results[name].append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(name, results[name][-1], flush=True)
    for n in ("1", "256"):
        before = statistics.median(r[n] for r in results["before"])
        after = statistics.median(r[n] for r in results["after"])
        ratio = after / before
        print(f"{n} rows: before {before:,.0f} rows/s, after {after:,.0f} rows/s, ×{ratio:.2f}")


if __name__ == "__main__":
    main()

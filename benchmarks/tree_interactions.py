"""How much of LightGBM's census lead comes from feature interactions: trees of limited depth.

A boosted model of stumps (2 leaves) is additive: a sum of one-feature functions, with no
interaction between features. Trees of depth 2 add pairwise interactions; the tuned trees
(up to 255 leaves) any order. Fitting the same task with each, on the same encoded split and
early-stopped on validation AUC like the baseline of ``mmoe paper census``, shows what the
interactions are worth against the networks' test AUC (the README's census tables).

    python benchmarks/tree_interactions.py --group 2 --data-dir DIR      # education, marital
    python benchmarks/tree_interactions.py --group 1 --data-dir DIR --json out.json

Every row uses the tuned parameters of ``configs/census/tuning/groupG-lightgbm.json``
(learning rate, min data in leaf, feature fraction) with only the tree size changed, seed 0,
early stopping after 50 rounds without a better validation AUC, up to ``--rounds`` trees.
Needs the ``lightgbm`` extra.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mmoe.experiments.gbdt import encoded_splits, fit_lightgbm, tuned_params

ROOT = Path(__file__).resolve().parents[1]
TASKS = {1: ("income", "marital"), 2: ("education", "marital")}
#: (label, LightGBM parameters that limit the trees)
SHAPES = [
    ("stumps: additive, no interactions", {"num_leaves": 2, "max_depth": 1}),
    ("depth 2: pairwise interactions", {"num_leaves": 4, "max_depth": 2}),
    ("depth 3", {"num_leaves": 8, "max_depth": 3}),
    ("tuned (any order)", {}),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--group", type=int, choices=(1, 2), required=True)
    parser.add_argument("--data-dir", required=True, help="census-income.data[.gz] and .test")
    parser.add_argument("--json", type=Path, help="write the rows here")
    parser.add_argument(
        "--tasks", default="main", help="main (the group's main task) or all (with marital)"
    )
    parser.add_argument(
        "--rounds", type=int, default=20_000, help="most trees (small trees need many)"
    )
    args = parser.parse_args()

    config = ROOT / "configs" / "census" / f"group{args.group}-single-task.yaml"
    rows = []
    print("task        trees shape                          trees  valid AUC  test AUC  seconds")
    tasks = TASKS[args.group] if args.tasks == "all" else TASKS[args.group][:1]
    for task in tasks:
        data = encoded_splits(str(config), args.data_dir, task)
        for label, shape in SHAPES:
            params = {**tuned_params(config, task), **shape}
            fit = fit_lightgbm(data, params, seed=0, num_rounds=args.rounds)
            rows.append({"task": task, "shape": label, "params": params, **fit})
            print(
                f"{task:<11} {label:<36} {fit['trees']:>5}  {fit['valid']:.4f}     "
                f"{fit['test']:.4f}    {fit['seconds']:>5.0f}"
            )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()

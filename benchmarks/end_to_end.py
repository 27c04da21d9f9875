"""End-to-end time of ``mmoe train`` on the full census files, and where it goes.

Runs the steps of ``mmoe.train`` one by one with a clock around each (reading and parsing the
two CSV files, fitting the preprocessor, encoding the splits, building the model, training,
final evaluation, writing the run directory), then times the real command
``mmoe train configs/census/group1-mmoe.yaml`` as a subprocess (Python start-up and imports
included) for the total a user waits.

    .venv/bin/python benchmarks/end_to_end.py [--data-dir DIR] [--epochs 10]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs/census/group1-mmoe.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared/data/census-income"))
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()
    overrides = [f"data.data_dir={args.data_dir}", f"training.epochs={args.epochs}"]

    clock: dict[str, float] = {}
    start = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal start
        now = time.perf_counter()
        clock[name] = now - start
        start = now

    import torch

    from mmoe.config import load_config
    from mmoe.data.preprocessor import Preprocessor
    from mmoe.data.sources import load_splits
    from mmoe.models import build_model
    from mmoe.predictor import TrainedModel
    from mmoe.training.evaluation import evaluate
    from mmoe.training.trainer import fit

    lap("imports (torch, pyarrow, mmoe)")
    config = load_config(CONFIG, overrides)
    splits = load_splits(config.data)
    lap("read + parse both CSV files (pyarrow)")
    pre = Preprocessor(config.features, config.tasks).fit(splits.train)
    lap("fit preprocessor (vocabularies, statistics)")
    train = pre.transform(splits.train, labels=True)
    valid = pre.transform(splits.valid, labels=True)
    assert splits.test is not None
    test = pre.transform(splits.test, labels=True)
    lap("encode train/valid/test to tensors")
    torch.manual_seed(config.training.seed)
    model = build_model(config.model, pre.input_spec(), [t.name for t in config.tasks])
    lap("build model")
    monitor = (config.monitor().name, config.monitor_metric())
    result = fit(model, train, valid, config.tasks, config.training, monitor, progress=False)
    clock[f"training steps ({result.steps} steps)"] = result.train_seconds
    lap("per-epoch validation")
    clock["per-epoch validation"] -= result.train_seconds
    evaluate(model, valid, config.tasks)
    evaluate(model, test, config.tasks)
    lap("final evaluation (valid + test)")
    with tempfile.TemporaryDirectory() as tmp:
        TrainedModel(config, pre, model).save(Path(tmp) / "run")
    lap("write run directory")

    total = sum(clock.values())
    print(f"`mmoe.train` steps on the full census files ({args.epochs} epochs):")
    for name, seconds in clock.items():
        print(f"  {name:45s} {seconds:7.2f} s  {seconds / total:6.1%}")
    print(f"  {'total (in-process)':45s} {total:7.2f} s")

    with tempfile.TemporaryDirectory() as tmp:
        sets = [arg for o in overrides for arg in ("--set", o)]
        out = str(Path(tmp) / "run")
        command = [sys.executable, "-m", "mmoe.cli", "train", str(CONFIG), "-q", "--out", out]
        command += sets
        began = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        wall = time.perf_counter() - began
    print(f"`mmoe train configs/census/group1-mmoe.yaml` wall time: {wall:.2f} s")


if __name__ == "__main__":
    main()

"""Kill a census training run with SIGKILL, resume it, and check it ends bit-identical.

Question: does a ``mmoe train`` run on real census data that is killed without warning
(``kill -9``: no handler runs, no checkpoint is written on the way out) and continued with
``--resume`` end with exactly the weights and metrics of the same run left alone?

Run from the repository root (about 45 s on 2 cores: 20 s per run)::

    .venv/bin/python benchmarks/resume_census.py
    .venv/bin/python benchmarks/resume_census.py --epochs 1 --kill-at 0.5   # quicker

Method:

* Config: ``configs/census/group1-mmoe.yaml`` as shipped (embeddings 8, MMoE 16 experts x
  [128], towers [8], batch 256, Adam 3e-4, evaluation and a checkpoint every epoch), with
  ``data.data_dir=DIR``, ``training.epochs=3`` (``--epochs``) and
  ``training.checkpoint_every_steps=100``.
* Run A: ``mmoe train CONFIG --out A --set ... -q``, left alone.
* Run B: the same command with ``--out B``. This script polls ``B.partial/checkpoint/
  trainer.json`` every 10 ms; once the checkpoint on disk has reached ``--kill-at`` (default
  40%) of the run's steps it waits ``--delay`` seconds more (default 0.3 s, a few dozen steps:
  the kill lands between two checkpoints, so work is lost and must be redone) and sends
  SIGKILL. Then ``mmoe train CONFIG --out B --set ... -q --resume`` runs to the end.
* Verdict: every tensor of ``A/model.safetensors`` and ``B/model.safetensors`` compared with
  ``torch.equal``; ``config.json`` and ``preprocessor.json`` byte for byte; the ``valid``,
  ``test``, ``best`` and ``steps`` entries of both ``metrics.json`` and every evaluation record
  of both ``metrics.jsonl`` compared exactly, leaving out only the timing fields. The exit
  status is 1 when anything differs.

Writes the verdict, the kill and resume steps and every difference found to ``--out``
(default ``benchmarks/results/resume_census.json``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from census_model import CONFIG, DEFAULT_DATA_DIR, ROOT
from safetensors.torch import load_file

from mmoe.config import load_config

DEFAULT_OUT = ROOT / "benchmarks/results/resume_census.json"
TRAIN_ROWS = 199_523  # census-income.data
TIMING_KEYS = {"train_seconds", "samples_per_second", "seconds"}


def mmoe_command(out: Path, overrides: list[str], resume: bool = False) -> list[str]:
    """``mmoe train CONFIG --out OUT --set ... -q``, through the interpreter running this."""
    command = [sys.executable, "-m", "mmoe", "train", str(CONFIG), "--out", str(out), "-q"]
    command += [arg for value in overrides for arg in ("--set", value)]
    return command + (["--resume"] if resume else [])


def run(command: list[str]) -> float:
    """Run ``command`` to completion (its output shown on failure); return its wall time."""
    start = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"failed (exit {proc.returncode}): {' '.join(command)}\n{proc.stderr[-3000:]}")
    return time.perf_counter() - start


def checkpoint_step(staging: Path) -> int | None:
    """The step of the checkpoint in ``staging`` (``None`` before the first one)."""
    try:  # trainer.json is replaced atomically: it is either whole or absent
        return int(json.loads((staging / "checkpoint/trainer.json").read_text())["step"])
    except FileNotFoundError:
        return None


def start_and_kill(command: list[str], staging: Path, kill_step: int, delay: float) -> dict:
    """Start ``command``; SIGKILL it ``delay`` s after its checkpoint reaches ``kill_step``.

    Returns when the checkpoints appeared and an estimate of the step the run was at when
    killed: the last checkpoint's step plus the time since, at the rate between the last two.
    """
    start = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seen: list[tuple[int, float]] = []  # (checkpoint step, when it was first seen)
    deadline = math.inf
    while time.perf_counter() < deadline:
        if proc.poll() is not None:
            sys.exit(
                f"run B ended (exit {proc.returncode}) before its checkpoint reached step "
                f"{kill_step}; lower --kill-at"
            )
        step = checkpoint_step(staging)
        if step is not None and (not seen or step != seen[-1][0]):
            seen.append((step, time.perf_counter()))
            if step >= kill_step and deadline == math.inf:
                deadline = time.perf_counter() + delay
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    killed = time.perf_counter()
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.returncode
    (step0, t0), (step1, t1) = seen[-2] if len(seen) > 1 else (0, start), seen[-1]
    rate = (step1 - step0) / (t1 - t0)
    return {
        "killed_after_seconds": round(killed - start, 2),
        "checkpoints_seen": [[s, round(t - start, 3)] for s, t in seen],
        "seconds_since_last_checkpoint": round(killed - t1, 3),
        "steps_per_second_before_kill": round(rate, 1),
        "estimated_step_at_kill": round(step1 + (killed - t1) * rate),
        "returncode": proc.returncode,
    }


def compare_weights(a: Path, b: Path) -> dict[str, Any]:
    ta, tb = load_file(a), load_file(b)
    different = sorted(k for k in ta.keys() & tb.keys() if not torch.equal(ta[k], tb[k]))
    return {
        "tensors": len(ta),
        "values": sum(t.numel() for t in ta.values()),
        "missing": sorted(ta.keys() ^ tb.keys()),
        "different": different,
        "max_abs_difference": max(
            ((ta[k].double() - tb[k].double()).abs().max().item() for k in different), default=0.0
        ),
    }


def without_timing(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: without_timing(v) for k, v in value.items() if k not in TIMING_KEYS}
    if isinstance(value, list):
        return [without_timing(v) for v in value]
    return value


def compare_runs(a: Path, b: Path) -> dict[str, Any]:
    """Every difference between two run directories that is not a timing."""
    found: dict[str, Any] = {
        "weights": compare_weights(a / "model.safetensors", b / "model.safetensors")
    }
    found["files_differing"] = [
        name
        for name in ("config.json", "preprocessor.json")
        if (a / name).read_bytes() != (b / name).read_bytes()
    ]
    ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (a, b))
    found["metrics_differing"] = [
        k
        for k in ("valid", "test", "best", "steps")
        if without_timing(ma[k]) != without_timing(mb[k])
    ]
    ha, hb = (
        [json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines()]
        for d in (a, b)
    )
    found["evaluations"] = [len(ha), len(hb)]
    found["evaluations_differing"] = [  # a missing record counts as a difference too
        i
        for i, (x, y) in enumerate(zip(ha, hb, strict=False))
        if without_timing(x) != without_timing(y)
    ]
    found["identical"] = not (
        found["weights"]["different"]
        or found["weights"]["missing"]
        or found["files_differing"]
        or found["metrics_differing"]
        or found["evaluations_differing"]
        or len(ha) != len(hb)
    )
    found["test"] = {"A": ma["test"], "B": mb["test"]}
    found["steps"] = [ma["steps"], mb["steps"]]
    found["train_step_seconds"] = [ma["seconds"]["train_steps"], mb["seconds"]["train_steps"]]
    found["timing_records"] = {  # left out of the comparison: (step, train_seconds, rows/s)
        name: [[r["step"], r["train_seconds"], r["samples_per_second"]] for r in history]
        for name, history in (("A", ha), ("B", hb))
    }
    return found


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="The method is described in the module docstring of this file.",
    )
    parser.add_argument(
        "--data-dir",
        default=str(DEFAULT_DATA_DIR),
        help="folder with census-income.data[.gz] and .test[.gz]",
    )
    parser.add_argument("--epochs", type=int, default=3, help="training.epochs (default 3)")
    parser.add_argument(
        "--every", type=int, default=100, help="training.checkpoint_every_steps (default 100)"
    )
    parser.add_argument(
        "--kill-at",
        type=float,
        default=0.4,
        help="kill once the checkpoint on disk has reached this fraction of the "
        "run's steps (default 0.4)",
    )
    parser.add_argument(
        "--delay",
        type=float,
        default=0.3,
        help="seconds between reaching that checkpoint and the kill (default 0.3)",
    )
    parser.add_argument(
        "--work",
        help="folder for the two runs (default: a temporary one, "
        "removed at the end); kept when given",
    )
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="JSON file to write")
    args = parser.parse_args()

    overrides = [
        f"data.data_dir={args.data_dir}",
        f"training.epochs={args.epochs}",
        f"training.checkpoint_every_steps={args.every}",
    ]
    config = load_config(CONFIG, overrides)
    batch_size, model = config.training.batch_size, config.model.model_dump()
    total = args.epochs * math.ceil(TRAIN_ROWS / batch_size)  # unless early stopping ends it
    kill_step = max(1, round(args.kill_at * total))
    work = Path(args.work or tempfile.mkdtemp(prefix="mmoe-resume-"))
    work.mkdir(parents=True, exist_ok=True)
    a, b = work / "A", work / "B"
    for path in (a, b, b.with_name("B.partial")):
        shutil.rmtree(path, ignore_errors=True)
    print(
        f"config: {CONFIG.relative_to(ROOT)} ({config.model.name} {model['num_experts']} x "
        f"{model['expert_hidden']}, towers {model['tower_hidden']}, batch {batch_size}) "
        f"--set {' --set '.join(overrides)}"
    )
    print(
        f"{total} steps; kill once the checkpoint reaches step {kill_step}, "
        f"then {args.delay} s later\n"
    )
    try:
        print(f"A: {' '.join(mmoe_command(a, overrides))}", flush=True)
        seconds_a = run(mmoe_command(a, overrides))
        print(f"   {seconds_a:.1f} s", flush=True)
        print(f"B: same with --out {b}, killed (SIGKILL)", flush=True)
        staging = b.with_name("B.partial")
        kill = start_and_kill(mmoe_command(b, overrides), staging, kill_step, args.delay)
        resumed_from = checkpoint_step(staging)
        assert resumed_from is not None
        print(
            f"   killed after {kill['killed_after_seconds']} s, at about step "
            f"{kill['estimated_step_at_kill']}: {kill['seconds_since_last_checkpoint']} s after "
            f"the checkpoint of step {kill['checkpoints_seen'][-1][0]} appeared, at "
            f"{kill['steps_per_second_before_kill']:.0f} steps/s between the last two",
            flush=True,
        )
        print(f"B: {' '.join(mmoe_command(b, overrides, resume=True))}", flush=True)
        seconds_resume = run(mmoe_command(b, overrides, resume=True))
        print(f"   resumed from step {resumed_from}, {seconds_resume:.1f} s\n")
        found = compare_runs(a, b)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)

    weights = found["weights"]
    print(
        f"weights: {weights['tensors']} tensors, {weights['values']:,} values; "
        f"{len(weights['different'])} differ (max |A - B| {weights['max_abs_difference']:g})"
    )
    print(
        f"steps: A {found['steps'][0]}, B {found['steps'][1]}; evaluations: "
        f"A {found['evaluations'][0]}, B {found['evaluations'][1]}, "
        f"{len(found['evaluations_differing'])} differ"
    )
    for task in found["test"]["A"]:
        ta, tb = found["test"]["A"][task], found["test"]["B"][task]
        print(
            f"test {task}: AUC A {ta['auc']!r}  B {tb['auc']!r}  log loss A {ta['logloss']!r}  "
            f"B {tb['logloss']!r}"
        )
    print(
        f"config.json / preprocessor.json differ: {found['files_differing'] or 'none'}; "
        f"metrics.json entries differ: {found['metrics_differing'] or 'none'}"
    )
    after = [i for i, r in enumerate(found["timing_records"]["B"]) if r[0] > resumed_from]
    if after and len(found["timing_records"]["A"]) > after[0]:
        ra, rb = found["timing_records"]["A"][after[0]], found["timing_records"]["B"][after[0]]
        print(
            f"timing fields (not compared): first evaluation after the resume, step {rb[0]}: "
            f"samples_per_second A {ra[2]:,.0f}, B {rb[2]:,.0f}; seconds.train_steps "
            f"A {found['train_step_seconds'][0]}, B {found['train_step_seconds'][1]}"
        )
    verdict = "IDENTICAL" if found["identical"] else "DIFFERENT"
    print(f"\nverdict: resumed run B is {verdict} to uninterrupted run A")

    report = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "torch": torch.__version__,
        "cores": os.cpu_count(),
        "config": str(CONFIG.relative_to(ROOT)),
        "overrides": overrides,
        "total_steps": total,
        "kill_target_step": kill_step,
        "kill": kill,
        "resumed_from_step": resumed_from,
        "seconds": {"A": round(seconds_a, 2), "B_resume": round(seconds_resume, 2)},
        "verdict": verdict,
        **found,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {out}")
    sys.exit(0 if found["identical"] else 1)


if __name__ == "__main__":
    main()

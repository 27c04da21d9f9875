"""How training throughput grows with batch size, experts and tasks, against the CPU's limit.

Trains the census MMoE (the features of ``configs/census/group1-mmoe.yaml``) through
``mmoe.training.trainer.fit`` and reads the training throughput it reports (evaluation
excluded), for

* batch size 256 … 8192 (8 experts, 2 tasks),
* number of experts 2 … 32 (batch 1024, 2 tasks),
* number of tasks 2 … 8 (batch 1024, 8 experts; extra tasks repeat the two census labels,
  which costs the same as new labels would).

Beside each figure: the model's FLOPs per training sample (forward + backward, counted from the
layer shapes) and the arithmetic rate that implies, against the rate of a large float32 matmul
on the same threads — how far the hot path is from this CPU's limit.

    .venv/bin/python benchmarks/scaling.py [--data-dir DIR] [--threads 2] [--out DIR]

Writes ``scaling.json``, ``scaling.md`` and ``scaling.png`` into ``--out``
(default ``benchmarks/results``). Run on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from census_model import DEFAULT_DATA_DIR, ROOT, benchmark_config

from mmoe.config import TrainingConfig
from mmoe.data.batch import Batch
from mmoe.data.preprocessor import Preprocessor
from mmoe.data.sources import load_splits
from mmoe.models import MMoE
from mmoe.specs import InputSpec, TaskSpec
from mmoe.training.trainer import fit

ROWS_PER_POINT = 100_000  # training rows per measured epoch


def matmul_gflops(size: int = 2048, repeats: int = 10) -> float:
    """Rate of a large float32 matmul: the arithmetic limit the model is compared with."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    for _ in range(3):
        a @ b
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return 2 * size**3 / statistics.median(times) / 1e9


def flops_per_sample(spec: InputSpec, experts: int, hidden: int, tasks: int, tower: int) -> int:
    """Multiply-adds × 2 of the forward pass, × 3 for forward + backward (input and weight
    gradients each cost about one forward)."""
    d = spec.output_dim
    forward = (
        d * experts * hidden  # experts
        + d * experts * tasks  # gates
        + tasks * experts * hidden  # gate-weighted mixing
        + tasks * (hidden * tower + tower)  # towers
    )
    return 2 * 3 * forward


def throughput(
    data: Batch, valid: Batch, spec: InputSpec, tasks: list[TaskSpec], experts: int,
    batch_size: int, epochs: int = 3,
) -> float:  # fmt: skip
    """Median training rows/s over the epochs after the first (warm-up)."""
    torch.manual_seed(0)
    model = MMoE(spec, [t.name for t in tasks], num_experts=experts, expert_hidden=[16],
                 tower_hidden=[8])  # fmt: skip
    config = TrainingConfig(epochs=epochs, batch_size=batch_size, patience=None)
    result = fit(model, data, valid, tasks, config, (tasks[0].name, "auc"), progress=False)
    return statistics.median(r["samples_per_second"] for r in result.history[1:])


def with_tasks(batch: Batch, tasks: int) -> Batch:
    """The batch with its two label columns repeated to ``tasks`` columns."""
    assert batch.labels is not None and batch.label_mask is not None
    reps = -(-tasks // batch.labels.shape[1])
    labels = batch.labels.repeat(1, reps)[:, :tasks].contiguous()
    mask = batch.label_mask.repeat(1, reps)[:, :tasks].contiguous()
    return Batch(batch.categorical, batch.numeric, labels, mask)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(DEFAULT_DATA_DIR))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    config = benchmark_config(args.data_dir)
    splits = load_splits(config.data)
    pre = Preprocessor(config.features, config.tasks).fit(splits.train)
    data = pre.transform(splits.train).slice(0, ROWS_PER_POINT)
    valid = pre.transform(splits.valid).slice(0, 2000)
    spec = pre.input_spec()
    base = config.tasks[0]

    def task_list(n: int) -> list[TaskSpec]:
        return [base.model_copy(update={"name": f"task{i}"}) for i in range(n)]

    peak = matmul_gflops()
    rows: list[dict[str, Any]] = []

    def measure(axis: str, value: int, batch: int, experts: int, tasks: int) -> None:
        rate = throughput(with_tasks(data, tasks), with_tasks(valid, tasks), spec,
                          task_list(tasks), experts, batch)  # fmt: skip
        flops = flops_per_sample(spec, experts, 16, tasks, 8)
        row = {"axis": axis, "value": value, "batch_size": batch, "experts": experts,
               "tasks": tasks, "rows_per_second": round(rate),
               "flops_per_sample": flops, "gflops": round(rate * flops / 1e9, 2),
               "fraction_of_matmul_peak": round(rate * flops / 1e9 / peak, 4)}  # fmt: skip
        rows.append(row)
        print(f"{axis:10s} {value:5d}  {rate:12,.0f} rows/s  {row['gflops']:6.2f} GFLOP/s "
              f"({row['fraction_of_matmul_peak']:.1%} of the matmul peak)", flush=True)  # fmt: skip

    print(f"float32 matmul 2048³ on {args.threads} threads: {peak:.1f} GFLOP/s")
    for batch in (256, 512, 1024, 2048, 4096, 8192):
        measure("batch", batch, batch, 8, 2)
    for experts in (2, 4, 8, 16, 32):
        measure("experts", experts, 1024, experts, 2)
    for tasks in (2, 4, 8):
        measure("tasks", tasks, 1024, 8, tasks)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"threads": args.threads, "matmul_gflops": round(peak, 1),
            "date": time.strftime("%Y-%m-%d"), "torch": torch.__version__}  # fmt: skip
    (out / "scaling.json").write_text(json.dumps({**meta, "rows": rows}, indent=1) + "\n")
    (out / "scaling.md").write_text(markdown(rows, peak) + "\n")
    figure(rows, out / "scaling.png")
    print(f"wrote {out}/scaling.json, scaling.md, scaling.png")


def markdown(rows: list[dict[str, Any]], peak: float) -> str:
    lines = [
        f"float32 matmul limit: {peak:.1f} GFLOP/s",
        "",
        "| varied | batch | experts | tasks | rows/s | FLOP/sample | GFLOP/s | of matmul peak |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['axis']} | {r['batch_size']} | {r['experts']} | {r['tasks']} "
            f"| {r['rows_per_second']:,} | {r['flops_per_sample'] / 1e3:.0f} k "
            f"| {r['gflops']:.1f} | {r['fraction_of_matmul_peak']:.1%} |"
        )
    return "\n".join(lines)


def figure(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4), sharey=True)
    for ax, axis, label in zip(
        axes, ("batch", "experts", "tasks"), ("batch size", "experts", "tasks"), strict=True
    ):
        part = [r for r in rows if r["axis"] == axis]
        ax.plot([r["value"] for r in part], [r["rows_per_second"] for r in part], "o-")
        ax.set(xlabel=label, xscale="log", title=f"throughput against {label}")
        ax.set_xticks([r["value"] for r in part], [str(r["value"]) for r in part])
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("training rows / s")
    fig.savefig(path, dpi=120, bbox_inches="tight")


if __name__ == "__main__":
    main()

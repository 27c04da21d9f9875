"""Where one training step of the census MMoE spends its time, by part and by operator.

Times the forward and forward+backward of each block on a fixed 1024-row batch of the census
training file (median of repeated passes), the whole step, and prints torch.profiler's operator
table for 100 steps. Run it on an otherwise idle machine: another busy process on a 2-core
machine slows 2-thread torch operators several times over.

    .venv/bin/python benchmarks/step_profile.py [--data-dir DIR] [--threads 2] [--batch-size 1024]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from census_model import DEFAULT_DATA_DIR, benchmark_config

from mmoe.data.preprocessor import Preprocessor
from mmoe.data.sources import load_splits
from mmoe.layers import mix_experts
from mmoe.models import build_model
from mmoe.training.losses import MultiTaskLoss
from mmoe.training.optim import FusedAdam


def median_ms(fn: Callable[[], object], repeats: int = 7, inner: int = 50) -> float:
    """Median over ``repeats`` of the mean time of ``inner`` calls, in milliseconds."""
    for _ in range(10):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(inner):
            fn()
        times.append((time.perf_counter() - start) / inner * 1e3)
    return statistics.median(times)


def backward_of(fn: Callable[[], torch.Tensor]) -> Callable[[], None]:
    return lambda: fn().sum().backward()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(DEFAULT_DATA_DIR))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--no-profile", action="store_true", help="skip the operator table")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    config = benchmark_config(args.data_dir)
    train = load_splits(config.data).train
    pre = Preprocessor(config.features, config.tasks).fit(train)
    data = pre.transform(train)
    torch.manual_seed(0)
    model = build_model(config.model, pre.input_spec(), [t.name for t in config.tasks])
    optimizer = FusedAdam(model.parameters(), lr=1e-3)  # what the training loop uses
    loss_fn = MultiTaskLoss(config.tasks)
    batch = data.slice(0, args.batch_size)
    cat, num = batch.categorical, batch.numeric

    x = model.embedding(cat, num).detach().requires_grad_()
    experts = model.experts(x).detach().requires_grad_()
    gates = model.gates(x).detach().requires_grad_()
    mixed = mix_experts(gates, experts).detach().requires_grad_()

    def step() -> None:
        logits = model(cat, num)
        total, _ = loss_fn(logits, batch.labels, batch.label_mask)
        optimizer.zero_grad()
        total.backward()
        optimizer.step()

    parts = {
        "embedding": lambda: model.embedding(cat, num),
        "experts": lambda: model.experts(x),
        "gates": lambda: model.gates(x),
        "mix": lambda: mix_experts(gates, experts),
        "towers": lambda: model.towers(mixed),
    }
    print(f"census MMoE, batch {args.batch_size}, {args.threads} threads (ms)")
    print(f"{'part':12s} {'forward':>8s} {'fwd+bwd':>8s}")
    with torch.no_grad():
        forward = {name: median_ms(fn) for name, fn in parts.items()}
    for name, fn in parts.items():
        print(f"{name:12s} {forward[name]:8.3f} {median_ms(backward_of(fn)):8.3f}")
    whole = median_ms(step)
    print(f"{'whole step':12s} {'':8s} {whole:8.3f}  ({args.batch_size / whole * 1e3:,.0f} rows/s)")

    if not args.no_profile:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(100):
                step()
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=20))


if __name__ == "__main__":
    main()

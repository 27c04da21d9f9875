"""What the gate features cost: gate health in evaluation, and gate dropout in the training step.

Needs a trained run directory of a gated model (e.g. the census group-1 MMoE)::

    mmoe train configs/census/group1-mmoe.yaml --set data.data_dir=DIR --out runs/g1
    .venv/bin/python benchmarks/gate_health.py runs/g1 --rounds 7

1. Evaluation of the validation split as the trainer runs it, with and without the gate sums
   behind the ``gates`` key of ``metrics.jsonl`` (``evaluate_with_gates`` against the bare
   forward pass and metrics), interleaved round by round.
2. Training steps of the run's architecture with ``model.gate_dropout`` 0 and 0.1 (forward,
   loss, backward, Adam), interleaved. With 0 the step is the one without the key.

Prints medians over rounds and the ratios; every round is printed too.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import mmoe
from mmoe.data.sources import load_splits
from mmoe.inference import predict_logits
from mmoe.models.registry import build_model
from mmoe.training.evaluation import evaluate_with_gates
from mmoe.training.losses import MultiTaskLoss
from mmoe.training.metrics import task_metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=200, help="training steps per round")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    trained = mmoe.load(args.run_dir)
    splits = load_splits(trained.config.data)
    valid = trained.preprocessor.transform(splits.valid, labels=True)
    train = trained.preprocessor.transform(splits.train, labels=True)
    tasks = trained.preprocessor.tasks
    model = trained.model

    def bare() -> None:
        logits, _ = predict_logits(model, valid)
        task_metrics(logits.numpy(), valid.labels.numpy(), valid.label_mask.numpy(), tasks)

    def with_gates() -> None:
        evaluate_with_gates(model, valid, tasks)

    evals = _interleave({"evaluate": bare, "evaluate + gate health": with_gates}, args.rounds)
    _report(evals, "evaluate", f"evaluation of {len(valid):,} validation rows")

    batch_size = trained.config.training.batch_size
    models = {}
    for p in (0.0, 0.1):
        torch.manual_seed(0)
        config = trained.config.model.model_copy(update={"gate_dropout": p})
        net = build_model(config, trained.preprocessor.input_spec(), trained.task_names)
        models[f"gate_dropout {p}"] = (net, torch.optim.Adam(net.parameters(), lr=1e-3))
    loss_fn = MultiTaskLoss(tasks)
    generator = torch.Generator().manual_seed(0)
    order = torch.randperm(len(train), generator=generator)

    def steps(name: str) -> None:
        net, optimizer = models[name]
        net.train()
        for i in range(args.steps):
            rows = order[(i * batch_size) % (len(train) - batch_size) :][:batch_size]
            part = train.take(rows)
            total, _ = loss_fn(net(part.categorical, part.numeric), part.labels, None)
            optimizer.zero_grad()
            total.backward()
            optimizer.step()

    train_times = _interleave({n: (lambda n=n: steps(n)) for n in models}, args.rounds)
    _report(train_times, "gate_dropout 0.0", f"{args.steps} training steps of batch {batch_size}")


def _interleave(jobs: dict, rounds: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in jobs}
    for _ in range(rounds):
        for name, job in jobs.items():
            start = time.perf_counter()
            job()
            times[name].append(time.perf_counter() - start)
    return times


def _report(times: dict[str, list[float]], baseline: str, what: str) -> None:
    base = statistics.median(times[baseline])
    print(what)
    for name, values in times.items():
        median = statistics.median(values)
        rounds = " ".join(f"{1000 * v:.0f}" for v in values)
        ratio = median / base
        print(f"  {name:26s} median {1000 * median:8.1f} ms  x{ratio:.3f}  rounds: {rounds}")


if __name__ == "__main__":
    main()

"""Data-parallel training against threads on one machine, and what a checkpoint costs.

Question: for the census benchmark model at one global batch of 1024 rows, how many training
rows per second do 1 process x 2 threads, 1 process x 1 thread and 2 processes x 1 thread
(``DistributedDataParallel``, gloo) reach on this machine? And what does a checkpoint cost
(``training.checkpoint_every_steps: N``), written and read, against a training step?

Run from the repository root::

    .venv/bin/python benchmarks/distributed.py                    # 3 rounds x 600 steps, CPU
    .venv/bin/python benchmarks/distributed.py --rounds 1 --steps 60 --warmup 5 --saves 3  # smoke
    .venv/bin/python benchmarks/distributed.py --device cuda      # 1 GPU, and N GPUs with NCCL

Method:

* Model and data: census group 1 at the benchmark sizes of ``census_model.py`` (embeddings 4,
  MMoE 8 experts x [16], towers [8]) on the whole census training file (199,523 rows), global
  batch 1024, Adam (fused kernel) with learning rate 1e-3, seed 0.
* The coordinator reads and encodes the census files once and writes the encoded training split,
  a 2,000-row validation slice (never evaluated; the ``Trainer`` needs one), the fitted
  preprocessor and the run config to one temporary ``.npz``. Every measurement is a fresh worker
  process (``--worker``) that loads it and builds the model and a ``Trainer``.
* Variants on the CPU, with ``P = --nproc`` (default 2, this machine's cores): 1 process x P
  threads; 1 process x 1 thread; P processes x 1 thread, launched as
  ``python -m torch.distributed.run --standalone --nproc_per_node=P distributed.py --worker``
  (each rank trains on its 1/P of every global batch; DDP all-reduces the gradients inside
  backward; the ``Trainer`` turns off DDP's broadcast of the model's constant buffers before
  every forward). Each worker calls ``torch.set_num_threads`` itself. One more P x 1 variant
  says where DDP's time goes: with no synchronisation at all (``DDP.no_sync()``: each rank steps
  on its own gradients, which is not data-parallel training but the bound it could reach if
  communication were free).
* A worker runs ``--warmup`` steps, then times ``--steps`` calls of ``Trainer.train_step`` over
  ``InMemorySource.epoch(1), epoch(2), ...`` (epochs of 195 steps, the last batch 867 rows).
  The batch gather is included, evaluation and checkpoints are not, the same in every variant.
  Under DDP the ranks meet at a barrier before the clock starts; global rows/s = global rows of
  the timed steps / the slowest rank's wall time.
* Rounds interleave the variants (their order rotated by one each round, so that none always
  runs first) and every round is printed and saved: this VM drifts 10-15% from minute to minute.
* CUDA (``--device auto`` when torch sees a GPU, or ``--device cuda``): 1 process on 1 GPU, and
  with several GPUs one process per GPU under NCCL; same batch, steps and timing, with a
  ``torch.cuda.synchronize()`` at both ends of the clock. Without CUDA this part is skipped and
  the script says so.
* Checkpoints, in the coordinator after the rounds, for the benchmark model and for the shipped
  tuned config as is (``configs/census/group1-mmoe.yaml``: embeddings 8, 16 experts x [128],
  batch 256, Adam 3e-4): the median of 200 training steps (after 30 warm-up steps, each step
  synchronised), then ``--saves`` calls of ``Trainer.save_checkpoint()`` into a temporary
  folder, 5 training steps apart so that each writes a new file and prunes the previous one as
  in a run, with the early-stopping keeper holding a copy of the weights as it does from a
  run's first evaluation on; the size of the folder; 5 calls of ``Trainer.resume(dir)`` into a
  fresh trainer. Overhead of ``checkpoint_every_steps: N`` = median save / (N x median step).
  The files go to the page cache: neither the trainer nor this script calls fsync.

Prints the tables and ratios and writes every round, the checkpoint figures and a description
of the machine to ``--out`` (default ``benchmarks/results/distributed.json``) as JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import itertools
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from census_model import BENCHMARK_MODEL, CONFIG, DEFAULT_DATA_DIR, ROOT
from torch.nn.parallel import DistributedDataParallel

from mmoe.config import RunConfig, load_config, parse_config
from mmoe.data.batch import Batch
from mmoe.data.loaders import InMemorySource, TrainBatch
from mmoe.data.preprocessor import Preprocessor
from mmoe.data.sources import load_splits
from mmoe.models import build_model
from mmoe.training.distributed import DistContext, init_distributed, local_device, shutdown
from mmoe.training.evaluation import evaluate
from mmoe.training.trainer import Trainer

DEFAULT_OUT = ROOT / "benchmarks/results/distributed.json"
BENCHMARK_TRAINING = ["training.batch_size=1024", "training.learning_rate=0.001"]
VALID_ROWS = 2_000
BATCH_FIELDS = ("categorical", "numeric", "labels", "label_mask")
STEP_SAMPLES = 200  # training steps timed one by one for the checkpoint comparison
STEPS_BETWEEN_SAVES = 5
RESUMES = 5
EVERY = (100, 1000)  # checkpoint_every_steps values whose overhead is reported


# ---- shared by the coordinator and the workers --------------------------------------------------


def build_trainer(
    config: RunConfig,
    pre: Preprocessor,
    train: Batch,
    valid: Batch,
    device: torch.device,
    ctx: DistContext,
    checkpoint_dir: Path | None = None,
) -> Trainer:
    """The ``Trainer`` ``mmoe train`` builds for ``config``, on already encoded splits."""
    training = config.training
    source = InMemorySource(
        train.to(device), training.batch_size, training.seed, ctx.rank, ctx.world_size
    )
    torch.manual_seed(training.seed)
    model = build_model(config.model, pre.input_spec(), [t.name for t in config.tasks])
    monitor = (config.monitor().name, config.monitor_metric())
    return Trainer(
        model,
        source,
        valid.to(device),
        config.tasks,
        training,
        monitor,
        device=device,
        dist=ctx,
        checkpoint_dir=checkpoint_dir,
        progress=False,
    )


def batches(source: InMemorySource) -> Iterator[TrainBatch]:
    """This rank's batches of epoch 1, 2, ... without end."""
    for epoch in itertools.count(1):
        yield from source.epoch(epoch)


def describe(config: RunConfig) -> str:
    """``mmoe 16 x [128], batch 256``: a config's model and batch, in a few words."""
    model = config.model.model_dump()
    size = f"{model.get('num_experts', '')} x {model.get('expert_hidden', '')}"
    return f"{config.model.name} {size}, batch {config.training.batch_size}"


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ---- worker: one measurement, one process (or one rank of a torchrun job) ----------------------


def save_prepared(path: Path, config: RunConfig, pre: Preprocessor, train: Batch, valid: Batch):
    arrays: dict[str, Any] = {
        "config": np.array(json.dumps(config.model_dump(mode="json"))),
        "preprocessor": np.array(json.dumps(pre.to_dict())),
    }
    for split, batch in (("train", train), ("valid", valid)):
        for name in BATCH_FIELDS:
            arrays[f"{split}_{name}"] = getattr(batch, name).numpy()
    np.savez(path, **arrays)


def load_prepared(path: Path) -> tuple[RunConfig, Preprocessor, Batch, Batch]:
    with np.load(path) as f:
        config = parse_config(json.loads(str(f["config"])))
        pre = Preprocessor.from_dict(json.loads(str(f["preprocessor"])))
        train, valid = (
            Batch(*(torch.from_numpy(f[f"{split}_{name}"]) for name in BATCH_FIELDS))
            for split in ("train", "valid")
        )
    return config, pre, train, valid


def worker(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    device = local_device(args.device)
    ctx = init_distributed(device)
    stack = contextlib.ExitStack()
    try:
        trainer = build_trainer(*load_prepared(Path(args.data)), device, ctx)
        stream = batches(trainer.source)  # type: ignore[arg-type]
        if args.ddp == "no sync":  # each rank trains on its own gradients: a bound
            assert isinstance(trainer.module, DistributedDataParallel)
            stack.enter_context(trainer.module.no_sync())
        for _ in range(args.warmup):
            trainer.train_step(next(stream))
        synchronize(device)
        if ctx.enabled:
            torch.distributed.barrier()
        rows = 0
        start = time.perf_counter()
        for _ in range(args.steps):
            part = next(stream)
            trainer.train_step(part)
            rows += part.global_rows
        synchronize(device)
        seconds = time.perf_counter() - start
        rank_seconds = [seconds]
        if ctx.enabled:
            rank_seconds = [0.0] * ctx.world_size
            torch.distributed.all_gather_object(rank_seconds, seconds)
        if ctx.is_main:
            result = {
                "processes": ctx.world_size,
                "threads": args.threads,
                "device": str(device),
                "steps": args.steps,
                "global_rows": rows,
                "rank_seconds": [round(s, 4) for s in rank_seconds],
                "rows_per_second": round(rows / max(rank_seconds), 1),
            }
            Path(args.result).write_text(json.dumps(result))
        del trainer, stream  # DDP, which holds the process group, goes before the group
    finally:
        stack.close()
        shutdown(ctx)


# ---- coordinator --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    name: str
    key: str
    processes: int
    threads: int
    device: str
    ddp: str = "as is"  # or "no sync" (no gradient all-reduce: a bound, not training)


def variants(device: str, nproc: int) -> tuple[list[Variant], list[tuple[str, str]]]:
    """The variants measured on ``device`` and the pairs of keys whose ratios are reported."""
    if device == "cpu":
        p = nproc
        found = [
            Variant(f"1 process x {p} threads", f"1x{p}", 1, p, "cpu"),
            Variant("1 process x 1 thread", "1x1", 1, 1, "cpu"),
            Variant(f"{p} processes x 1 thread (DDP, gloo)", f"{p}x1", p, 1, "cpu"),
            Variant(f"{p} x 1, no DDP sync (bound)", f"{p}x1-nosync", p, 1, "cpu", "no sync"),
        ]  # fmt: skip
        ddp, one = f"{p}x1", f"1x{p}"
        pairs = [(ddp, one), (ddp, "1x1"), (one, "1x1")]
        return found, [*pairs, (f"{ddp}-nosync", one), (ddp, f"{ddp}-nosync")]
    gpus = torch.cuda.device_count()
    found = [Variant("1 process, 1 GPU", "1gpu", 1, 1, "cuda")]
    if gpus < 2:
        return found, []
    found.append(
        Variant(f"{gpus} processes, {gpus} GPUs (DDP, NCCL)", f"{gpus}gpu", gpus, 1, "cuda")
    )
    return found, [(f"{gpus}gpu", "1gpu")]


def run_variant(variant: Variant, data: Path, args: argparse.Namespace, tmp: Path) -> dict:
    result = tmp / f"{variant.key}.json"
    result.unlink(missing_ok=True)
    worker_args = [str(Path(__file__).resolve()), "--worker", f"--data={data}"]
    worker_args += [f"--threads={variant.threads}", f"--device={variant.device}"]
    worker_args += [f"--steps={args.steps}", f"--warmup={args.warmup}", f"--result={result}"]
    worker_args += [f"--ddp={variant.ddp}"]
    launcher = [sys.executable]
    if variant.processes > 1:
        launcher += [
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={variant.processes}",
        ]
    proc = subprocess.run([*launcher, *worker_args], capture_output=True, text=True)
    output = []  # what the ranks printed: torchrun's log lines and final report left out
    for line in proc.stderr.splitlines():
        if line.startswith("Traceback"):
            break
        if line.strip() and not re.match(r"[WEI]\d{4} |\*+$|Setting OMP_NUM_THREADS", line):
            output.append(line)
    if not result.is_file():
        sys.exit(f"{variant.name}: worker failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    measured = json.loads(result.read_text())
    if proc.returncode != 0:
        # Seen now and then on this VM: a rank aborts at interpreter exit, after the timing
        # ("terminate called without an active exception"); the measurement is complete.
        print(
            f"  note: {variant.name}: exit {proc.returncode} after the result was written: "
            f"{' | '.join(output)[:200]}",
            flush=True,
        )
        measured["exit_code"] = proc.returncode
        measured["stderr"] = output[-20:]
    return measured


def throughput_rounds(
    found: list[Variant],
    pairs: list[tuple[str, str]],
    data: Path,
    args: argparse.Namespace,
    tmp: Path,
) -> dict[str, Any]:
    rounds: list[dict[str, Any]] = []
    for r in range(args.rounds):
        shift = r % len(found)
        order = found[shift:] + found[:shift]
        measured = {}
        for v in order:  # the load average shows another busy process, if any
            measured[v.key] = {"load_before": os.getloadavg()[0], **run_variant(v, data, args, tmp)}
        rounds.append({"order": [v.key for v in order], **measured})
        rates = "  ".join(f"{v.key} {measured[v.key]['rows_per_second']:,.0f}" for v in order)
        print(f"  round {r + 1}/{args.rounds}: {rates} rows/s", flush=True)
    rates = {v.key: [rnd[v.key]["rows_per_second"] for rnd in rounds] for v in found}
    ratios = {
        f"{a} / {b}": [round(x / y, 4) for x, y in zip(rates[a], rates[b], strict=True)]
        for a, b in pairs
    }
    return {
        "variants": [v.__dict__ for v in found],
        "rounds": rounds,
        "rows_per_second": rates,
        "median_rows_per_second": {k: statistics.median(v) for k, v in rates.items()},
        "ratios_per_round": ratios,
    }


def checkpoint_costs(
    config: RunConfig,
    pre: Preprocessor,
    train: Batch,
    valid: Batch,
    device_kind: str,
    args: argparse.Namespace,
    tmp: Path,
) -> dict[str, Any]:
    device = torch.device(device_kind)
    directory = Path(tempfile.mkdtemp(prefix="checkpoint-", dir=tmp))
    trainer = build_trainer(config, pre, train, valid, device, DistContext(), directory)
    stream = batches(trainer.source)  # type: ignore[arg-type]
    step_ms = []
    for i in range(30 + STEP_SAMPLES):
        synchronize(device)
        start = time.perf_counter()
        trainer.train_step(next(stream))
        synchronize(device)
        if i >= 30:
            step_ms.append((time.perf_counter() - start) * 1e3)
    # From a run's first evaluation on, the keeper holds a copy of the best weights.
    trainer.model.eval()
    trainer.keeper.update(
        {"valid": evaluate(trainer.model, trainer.valid, trainer.tasks)}, trainer.model
    )
    trainer.model.train()
    save_ms = []
    for _ in range(args.saves):
        for _ in range(STEPS_BETWEEN_SAVES):
            trainer.train_step(next(stream))
        synchronize(device)
        start = time.perf_counter()
        trainer.save_checkpoint()
        save_ms.append((time.perf_counter() - start) * 1e3)
    files = {p.name: p.stat().st_size for p in directory.iterdir() if p.is_file()}
    fresh = build_trainer(config, pre, train, valid, device, DistContext())
    resume_ms = []
    for _ in range(RESUMES):
        start = time.perf_counter()
        fresh.resume(directory)
        synchronize(device)
        resume_ms.append((time.perf_counter() - start) * 1e3)
    restored = all(
        torch.equal(a, b)
        for a, b in zip(
            fresh.model.state_dict().values(), trainer.model.state_dict().values(), strict=True
        )
    )
    median_step, median_save = statistics.median(step_ms), statistics.median(save_ms)
    return {
        "model": describe(config),
        "device": str(device),
        "batch_size": config.training.batch_size,
        "parameters": sum(p.numel() for p in trainer.model.parameters()),
        "files_bytes": files,
        "mib": sum(files.values()) / 2**20,
        "step_ms_median": median_step,
        "save_ms": save_ms,
        "save_ms_median": median_save,
        "save_ms_max": max(save_ms),
        "resume_ms": resume_ms,
        "resume_ms_median": statistics.median(resume_ms),
        "resumed_weights_equal": restored,
        "overhead_percent": {str(n): 100 * median_save / (n * median_step) for n in EVERY},
    }


def print_throughput(title: str, found: list[Variant], result: dict[str, Any]) -> None:
    rounds = len(result["rounds"])
    heads = "".join(f"{f'round {r + 1}':>10s}" for r in range(rounds))
    width = max(len(v.name) for v in found) + 2
    print(title)
    print(f"{'training rows/s':{width}s}{heads}{'median':>10s}")
    for v in found:
        cells = "".join(f"{x:>10,.0f}" for x in result["rows_per_second"][v.key])
        print(f"{v.name:{width}s}{cells}{result['median_rows_per_second'][v.key]:>10,.0f}")
    if result["ratios_per_round"]:
        print(f"{'ratio (same round)':{width}s}{heads}{'median':>10s}")
    for name, values in result["ratios_per_round"].items():
        cells = "".join(f"{x:>10.3f}" for x in values)
        print(f"{name:{width}s}{cells}{statistics.median(values):>10.3f}")
    print()


def print_checkpoints(rows: list[dict[str, Any]], saves: int) -> None:
    print(
        f"checkpoints: median of {saves} saves ({STEPS_BETWEEN_SAVES} training steps apart) and "
        f"of {RESUMES} resumes; overhead of checkpoint_every_steps N = median save / "
        "(N x median step)"
    )
    width = max(len(r["model"]) for r in rows) + 2
    every = "".join(f"{f'N={n}':>8s}" for n in EVERY)
    print(
        f"{'model':{width}s}{'device':>6s}{'params':>9s}{'MiB':>7s}{'step ms':>9s}"
        f"{'save ms':>9s}{'max':>7s}{'resume ms':>11s}{every}"
    )
    for r in rows:
        overhead = "".join(f"{r['overhead_percent'][str(n)]:>7.2f}%" for n in EVERY)
        print(
            f"{r['model']:{width}s}{r['device']:>6s}{r['parameters']:>9,d}{r['mib']:>7.2f}"
            f"{r['step_ms_median']:>9.2f}{r['save_ms_median']:>9.2f}{r['save_ms_max']:>7.1f}"
            f"{r['resume_ms_median']:>11.2f}{overhead}"
        )
    print()


def machine() -> dict[str, Any]:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "gpus": gpus,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def coordinator(args: argparse.Namespace) -> None:
    devices = ["cpu"] if args.device in ("auto", "cpu") else []
    cuda_note = None
    if args.device in ("auto", "cuda"):
        if torch.cuda.is_available():
            devices.append("cuda")
        else:
            cuda_note = (
                f"CUDA is absent (torch {torch.__version__} sees no CUDA device): "
                "the GPU variants are skipped"
            )
            print(cuda_note + "\n")
    report: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": machine(),
        "settings": {
            k: v for k, v in vars(args).items() if k not in ("worker", "data", "result", "threads")
        },
        "cuda_skipped": cuda_note,
    }
    if devices:
        bench = load_config(
            CONFIG, [f"data.data_dir={args.data_dir}", *BENCHMARK_MODEL, *BENCHMARK_TRAINING]
        )
        tuned = load_config(CONFIG, [f"data.data_dir={args.data_dir}"])
        splits = load_splits(bench.data)
        pre = Preprocessor(bench.features, bench.tasks).fit(splits.train)
        pre_tuned = Preprocessor(tuned.features, tuned.tasks).fit(splits.train)
        train = pre.transform(splits.train, labels=True)
        valid = pre.transform(splits.valid, labels=True).slice(0, VALID_ROWS)
        train_tuned = pre_tuned.transform(splits.train, labels=True)
        valid_tuned = pre_tuned.transform(splits.valid, labels=True).slice(0, VALID_ROWS)
        del splits
        steps_per_epoch = -(-len(train) // bench.training.batch_size)
        print(
            f"census group 1, {len(train):,} training rows; {describe(bench)} "
            f"({steps_per_epoch} steps per epoch), Adam {bench.training.learning_rate:g}; "
            f"{args.steps} timed steps after {args.warmup} warm-up per measurement; "
            f"rounds: {args.rounds}\n"
        )
        with tempfile.TemporaryDirectory(prefix="mmoe-distributed-") as tmp_name:
            tmp = Path(tmp_name)
            data = tmp / "prepared.npz"
            save_prepared(data, bench, pre, train, valid)
            for device in devices:
                found, pairs = variants(device, args.nproc)
                result = throughput_rounds(found, pairs, data, args, tmp)
                print()
                report[device] = result
                print_throughput(f"{device.upper()}: training rows/s (global)", found, result)
            torch.set_num_threads(args.nproc)
            rows = []
            for device in devices:
                for name, config, fitted, encoded, held_out in (
                    ("benchmark", bench, pre, train, valid),
                    ("shipped", tuned, pre_tuned, train_tuned, valid_tuned),
                ):
                    cost = checkpoint_costs(config, fitted, encoded, held_out, device, args, tmp)
                    rows.append({"model": f"{name} {cost.pop('model')}", **cost})
            report["checkpoint"] = rows
            print_checkpoints(rows, args.saves)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {out}")


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
    parser.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default="auto",
        help="auto: the CPU variants, and the GPU ones when torch sees CUDA; "
        "cpu or cuda: only those",
    )
    parser.add_argument(
        "--nproc",
        type=int,
        default=2,
        help="P of the CPU variants 1 x P threads, 1 x 1, P processes x 1 "
        "(default 2); also the threads of the checkpoint measurement",
    )
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument(
        "--steps",
        type=int,
        default=600,
        help="timed training steps per measurement (default 600, ~3 epochs)",
    )
    parser.add_argument(
        "--warmup", type=int, default=30, help="untimed steps before them (default 30)"
    )
    parser.add_argument(
        "--saves", type=int, default=20, help="checkpoints written per model (default 20)"
    )
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="JSON file to write")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    parser.add_argument("--ddp", default="as is", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
    else:
        coordinator(args)


if __name__ == "__main__":
    main()

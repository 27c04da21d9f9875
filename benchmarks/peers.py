"""Side-by-side benchmark: mmoe against DeepCTR-Torch and torch-rechub on Census-Income.

Question: is mmoe's training hot path several times faster than two peer libraries' own training
APIs, for the same model on the same data on this machine?

Install (from the repository root; a separate virtual environment so that the peers never touch
.venv, and `--no-deps` so that pip never brings in a second torch)::

    python3 -m venv .venv-bench
    .venv-bench/bin/pip install -c constraints.txt -e .
    .venv-bench/bin/pip install -c constraints.txt -r benchmarks/requirements-peers-deps.txt
    .venv-bench/bin/pip install --no-deps -r benchmarks/requirements-peers.txt

Run::

    .venv-bench/bin/python benchmarks/peers.py                      # 3 rounds x 3 epochs, all rows
    .venv-bench/bin/python benchmarks/peers.py --rows 20000 --rounds 1 --epochs 2   # smoke run

Method:

* Configuration, the same in all three libraries: the Census-Income training file, the features
  and the two binary tasks of ``configs/census/group1-mmoe.yaml`` (income > 50K, marital status
  "Never married"), categorical features label-encoded with embeddings of width 4, numeric
  features standardised; MMoE with 8 experts x [16] ReLU units, linear-softmax gates, towers [8];
  batch size 1024, Adam with learning rate 1e-3, no weight decay, no L2 regularisation, no
  dropout and no batch normalisation wherever the library lets them be switched off;
  ``torch.set_num_threads(2)``.
* Preprocessing is done once: a helper process fits mmoe's ``Preprocessor`` on the training
  table and writes the encoded train, validation (2,000 rows, for mmoe's ``fit``) and test arrays
  to one temporary ``.npz``. Every library gets what its own API expects built from those arrays.
* Each library trains through its own public training API in a fresh worker process
  (``--worker LIB``); the workers run interleaved, mmoe, deepctr, rechub, mmoe, ... for
  ``--rounds`` rounds, so that drift of the (shared) machine hits all alike.
* Training throughput is rows per second of training per epoch, evaluation excluded; the first
  epoch is warm-up and left out of the summary. mmoe: ``samples_per_second`` of the evaluation
  records of ``FitResult.history``. DeepCTR-Torch: ``model.fit`` without validation data, timed
  per epoch by a ``deepctr_torch.callbacks.Callback``. torch-rechub: ``MTLTrainer.fit`` always
  validates and saves a checkpoint after every epoch, so its public per-epoch training method
  ``MTLTrainer.train_one_epoch`` is called and timed instead.
* Inference throughput: the test half of the test file (49,881 rows) predicted at batch size
  4096 through each library's predict API, probabilities out; median of five timed passes.
* Test AUC of both tasks with scikit-learn's ``roc_auc_score`` on those probabilities.
* Peak RSS: ``ru_maxrss`` of the worker process, in MiB. Linux carries the high-water mark of
  the process that spawned the worker into it, so the coordinator imports nothing heavy and
  leaves the data preparation to a helper process; ``VmHWM`` (the worker's own high-water mark,
  from /proc) is recorded beside it as a cross-check.

The coordinator prints a summary table and the mmoe/peer ratios and writes it, with the raw
per-round numbers and a description of the machine, to ``--out`` as JSON.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
CONFIG = REPO_ROOT / "configs" / "census" / "group1-mmoe.yaml"
DEFAULT_DATA_DIR = REPO_ROOT.parent / "shared" / "data" / "census-income"
DEFAULT_OUT = REPO_ROOT / "benchmarks" / "results" / "peers.json"

LIBRARIES = ("mmoe", "deepctr", "rechub")  # also the order of the workers within a round
DISTRIBUTIONS = {"mmoe": "mmoe", "deepctr": "deepctr-torch", "rechub": "torch-rechub"}

SEED = 0
THREADS = 2
EMBEDDING_DIM = 4
NUM_EXPERTS = 8
EXPERT_HIDDEN = [16]
TOWER_HIDDEN = [8]
BATCH_SIZE = 1024
LEARNING_RATE = 1e-3
VALID_ROWS = 2_000  # mmoe's fit evaluates once per epoch; keep that evaluation small
PREDICT_BATCH_SIZE = 4096
INFERENCE_PASSES = 5


# ---- data: prepared once, read by every worker --------------------------------------------------


def prepare(data_dir: Path, rows: int | None, out: Path) -> dict[str, Any]:
    """Encode the census splits with mmoe's ``Preprocessor`` and save the arrays to ``out``."""
    import numpy as np

    import mmoe
    from mmoe.data.census import load_census

    # The configuration, not the tuned one the YAML ships: embeddings of width 4.
    # Plain numeric columns, as the peers get them, whatever encoding the YAML ships.
    config = mmoe.load_config(
        CONFIG, [f"features.embedding_dim={EMBEDDING_DIM}", "features.numeric_encoding=standardize"]
    )
    train, valid, test = load_census(data_dir, split_seed=SEED)
    if rows is not None and rows < train.num_rows:
        keep = np.sort(np.random.default_rng(SEED).choice(train.num_rows, rows, replace=False))
        train = train.take(keep)
    pre = mmoe.Preprocessor(config.features, config.tasks).fit(train)
    arrays: dict[str, Any] = {"preprocessor": np.array(json.dumps(pre.to_dict()))}
    for split, table in (("train", train), ("valid", valid.slice(0, VALID_ROWS)), ("test", test)):
        batch = pre.transform(table, labels=True)
        assert batch.labels is not None and batch.label_mask is not None
        if not bool(batch.label_mask.all()):
            raise SystemExit(f"{split}: some labels are missing; the peers cannot mask them")
        arrays[f"{split}_categorical"] = batch.categorical.numpy()
        arrays[f"{split}_numeric"] = batch.numeric.numpy()
        arrays[f"{split}_labels"] = batch.labels.numpy()
    np.savez(out, **arrays)
    return {f"{s}_rows": int(arrays[f"{s}_labels"].shape[0]) for s in ("train", "valid", "test")}


@dataclass
class Split:
    categorical: Any  # int64 (N, Fc), vocabulary codes, 0 = unknown
    numeric: Any  # float32 (N, Fn), standardised
    labels: Any  # float32 (N, T), 0/1

    def __len__(self) -> int:
        return self.labels.shape[0]


@dataclass
class Data:
    """The prepared arrays and the feature description every library builds its model from."""

    train: Split
    valid: Split
    test: Split
    categorical_names: list[str]
    numeric_names: list[str]
    cardinalities: list[int]  # vocabulary sizes, index 0 included
    embedding_dims: list[int]
    task_names: list[str]
    preprocessor_state: dict[str, Any]

    @classmethod
    def load(cls, path: Path) -> Data:
        import numpy as np

        from mmoe.data.preprocessor import Preprocessor

        with np.load(path) as f:
            splits = {
                s: Split(f[f"{s}_categorical"], f[f"{s}_numeric"], f[f"{s}_labels"])
                for s in ("train", "valid", "test")
            }
            state = json.loads(str(f["preprocessor"]))
        pre = Preprocessor.from_dict(state)
        spec = pre.input_spec()
        return cls(
            **splits,
            categorical_names=[f.name for f in pre.features.categorical],
            numeric_names=[f.name for f in pre.features.numeric],
            cardinalities=list(spec.cardinalities),
            embedding_dims=list(spec.embedding_dims),
            task_names=[t.name for t in pre.tasks],
            preprocessor_state=state,
        )

    def columns(self, split: Split) -> dict[str, Any]:
        """One 1-D array per feature (the peers' input), keyed by a ModuleDict-safe name."""
        out = {key: split.categorical[:, j] for j, key in enumerate(self.categorical_keys)}
        out.update({key: split.numeric[:, j] for j, key in enumerate(self.numeric_keys)})
        return out

    @property
    def categorical_keys(self) -> list[str]:
        return [_key(n) for n in self.categorical_names]

    @property
    def numeric_keys(self) -> list[str]:
        return [_key(n) for n in self.numeric_names]


def _key(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name)


# ---- the three libraries, each through its own public API ---------------------------------------


@dataclass
class Trained:
    """What a library's training left: per-epoch throughput and a test-set predictor."""

    epoch_samples_per_second: list[float]
    predict: Callable[[], Any]  # -> float (N_test, T) probabilities, via the library's predict API
    num_parameters: int
    notes: str = ""


def _count(model: Any) -> int:
    return sum(p.numel() for p in model.parameters())


def train_mmoe(data: Data, epochs: int) -> Trained:
    import torch

    import mmoe
    from mmoe.config import TrainingConfig
    from mmoe.data.batch import Batch
    from mmoe.inference import predict_logits
    from mmoe.training.trainer import fit

    pre = mmoe.Preprocessor.from_dict(data.preprocessor_state)

    def batch(split: Split, labels: bool = True) -> Batch:
        cat, num = torch.from_numpy(split.categorical), torch.from_numpy(split.numeric)
        if not labels:
            return Batch(cat, num)
        y = torch.from_numpy(split.labels)
        return Batch(cat, num, y, torch.ones_like(y, dtype=torch.bool))

    torch.manual_seed(SEED)
    model = mmoe.MMoE(
        pre.input_spec(),
        data.task_names,
        num_experts=NUM_EXPERTS,
        expert_hidden=EXPERT_HIDDEN,
        tower_hidden=TOWER_HIDDEN,
    )
    config = TrainingConfig(
        epochs=epochs,
        batch_size=BATCH_SIZE,
        learning_rate=LEARNING_RATE,
        weight_decay=0.0,
        seed=SEED,
        patience=None,
        restore_best=False,  # end with the last epoch's weights, as the peers do
    )
    result = fit(
        model,
        batch(data.train),
        batch(data.valid),
        pre.tasks,
        config,
        monitor=(data.task_names[0], "auc"),
        progress=False,
    )
    test = batch(data.test, labels=False)

    def predict() -> Any:
        logits, _ = predict_logits(model, test, batch_size=PREDICT_BATCH_SIZE)
        return torch.sigmoid(logits).numpy()

    return Trained([r["samples_per_second"] for r in result.history], predict, _count(model))


def train_deepctr(data: Data, epochs: int) -> Trained:
    import torch
    from deepctr_torch.callbacks import Callback
    from deepctr_torch.inputs import DenseFeat, SparseFeat
    from deepctr_torch.models import MMOE

    class EpochTimer(Callback):
        """Times each epoch of ``BaseModel.fit`` (no validation data is given, so none runs)."""

        def __init__(self) -> None:
            super().__init__()
            self.seconds: list[float] = []

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self._start = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            self.seconds.append(time.perf_counter() - self._start)

    columns = [
        SparseFeat(key, vocabulary_size=card, embedding_dim=dim)
        for key, card, dim in zip(
            data.categorical_keys, data.cardinalities, data.embedding_dims, strict=True
        )
    ] + [DenseFeat(key, 1) for key in data.numeric_keys]
    torch.manual_seed(SEED)
    model = MMOE(
        columns,
        num_experts=NUM_EXPERTS,
        expert_dnn_hidden_units=tuple(EXPERT_HIDDEN),
        gate_dnn_hidden_units=(),  # linear gate
        tower_dnn_hidden_units=tuple(TOWER_HIDDEN),
        l2_reg_linear=0.0,
        l2_reg_embedding=0.0,
        l2_reg_dnn=0.0,
        seed=SEED,
        dnn_dropout=0.0,
        dnn_activation="relu",
        dnn_use_bn=False,
        task_types=("binary",) * len(data.task_names),
        task_names=tuple(data.task_names),
        device="cpu",
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE, weight_decay=0.0)
    model.compile(optimizer, loss=["binary_crossentropy"] * len(data.task_names))
    timer = EpochTimer()
    model.fit(
        data.columns(data.train),
        data.train.labels,
        batch_size=BATCH_SIZE,
        epochs=epochs,
        verbose=0,
        shuffle=True,
        callbacks=[timer],
    )
    test = data.columns(data.test)
    rows = len(data.train)
    return Trained(
        [round(rows / s, 1) for s in timer.seconds],
        lambda: model.predict(test, batch_size=PREDICT_BATCH_SIZE),
        _count(model),
    )


def train_rechub(data: Data, epochs: int) -> Trained:
    import numpy as np
    import torch
    from torch.utils.data import DataLoader
    from torch_rechub.basic.features import DenseFeature, SparseFeature
    from torch_rechub.models.multi_task import MMOE
    from torch_rechub.trainers import MTLTrainer
    from torch_rechub.utils.data import DataGenerator, PredictDataset

    features = [
        SparseFeature(key, vocab_size=card, embed_dim=dim)
        for key, card, dim in zip(
            data.categorical_keys, data.cardinalities, data.embedding_dims, strict=True
        )
    ] + [DenseFeature(key) for key in data.numeric_keys]
    task_types = ["classification"] * len(data.task_names)
    torch.manual_seed(SEED)
    model = MMOE(
        features,
        task_types,
        n_expert=NUM_EXPERTS,
        expert_params={"dims": EXPERT_HIDDEN, "activation": "relu", "dropout": 0.0},
        tower_params_list=[
            {"dims": TOWER_HIDDEN, "activation": "relu", "dropout": 0.0} for _ in task_types
        ],
    )
    with tempfile.TemporaryDirectory() as model_path:  # only fit() writes there; not called
        trainer = MTLTrainer(
            model,
            task_types,
            optimizer_params={"lr": LEARNING_RATE, "weight_decay": 0.0},
            n_epoch=epochs,
            device="cpu",
            model_path=model_path,
        )
    train_loader, _, _ = DataGenerator(
        data.columns(data.train), data.train.labels
    ).generate_dataloader(
        x_val=data.columns(data.valid),
        y_val=data.valid.labels,
        x_test=data.columns(data.test),
        y_test=data.test.labels,
        batch_size=BATCH_SIZE,
    )
    rows = len(data.train)
    throughput = []
    for _ in range(epochs):
        start = time.perf_counter()
        trainer.train_one_epoch(train_loader)
        throughput.append(round(rows / (time.perf_counter() - start), 1))
    predict_loader = DataLoader(
        PredictDataset(data.columns(data.test)), batch_size=PREDICT_BATCH_SIZE, shuffle=False
    )
    return Trained(
        throughput,
        lambda: np.asarray(trainer.predict(trainer.model, predict_loader)),
        _count(model),
        notes="MLP layers always carry BatchNorm1d (experts, gates and towers)",
    )


TRAINERS: dict[str, Callable[[Data, int], Trained]] = {
    "mmoe": train_mmoe,
    "deepctr": train_deepctr,
    "rechub": train_rechub,
}


def run_worker(lib: str, data_path: Path, epochs: int) -> dict[str, Any]:
    """Train ``lib``, time inference, score the test set; return one JSON-able record."""
    import numpy as np
    import torch
    from sklearn.metrics import roc_auc_score

    torch.set_num_threads(THREADS)
    np.random.seed(SEED)
    start = time.perf_counter()
    load_at_start = os.getloadavg()[0]
    data = Data.load(data_path)
    trained = TRAINERS[lib](data, epochs)
    seconds = []
    for _ in range(INFERENCE_PASSES):
        t0 = time.perf_counter()
        probs = np.asarray(trained.predict(), dtype=np.float64)
        seconds.append(time.perf_counter() - t0)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    expected = (len(data.test), len(data.task_names))
    if probs.shape != expected:
        raise SystemExit(f"{lib}: predictions have shape {probs.shape}, expected {expected}")
    return {
        "lib": lib,
        "version": metadata.version(DISTRIBUTIONS[lib]),
        "epochs": epochs,
        "train_rows": len(data.train),
        "train_samples_per_second": trained.epoch_samples_per_second,
        "inference_samples_per_second": round(len(data.test) / statistics.median(seconds), 1),
        "inference_seconds": [round(s, 4) for s in seconds],
        "test_auc": {
            task: float(roc_auc_score(data.test.labels[:, k], probs[:, k]))
            for k, task in enumerate(data.task_names)
        },
        "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
        "vm_hwm_mib": _vm_hwm_mib(),
        "num_parameters": trained.num_parameters,
        "threads": torch.get_num_threads(),
        "worker_seconds": round(time.perf_counter() - start, 2),
        "worker_cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2),
        # 1-minute load average; the worker itself adds up to 2, more means other work ran too
        "load_average": [round(load_at_start, 2), round(os.getloadavg()[0], 2)],
        "notes": trained.notes,
    }


def _vm_hwm_mib() -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


# ---- the coordinator ---------------------------------------------------------------------------


def _run(args: list[str]) -> str:
    """Run this script in a fresh interpreter; return its stdout, or stop with its stderr."""
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), *args], capture_output=True, text=True
    )
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
        raise SystemExit(f"{' '.join(args)}: exited with {proc.returncode}")
    return proc.stdout


def _last_json(stdout: str) -> dict[str, Any]:
    """The record a child printed last (the peers print their own lines on stdout too)."""
    for line in reversed(stdout.splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                continue
    raise SystemExit(f"no JSON record in the output:\n{stdout[-2000:]}")


def summarise(rounds: list[dict[str, dict[str, Any]]], libs: list[str]) -> dict[str, Any]:
    """Per-library medians / means / maxima over rounds, and mmoe's ratios to each peer."""
    per_lib: dict[str, dict[str, Any]] = {}
    for lib in libs:
        records = [r[lib] for r in rounds]
        epochs = [
            sps
            for rec in records
            for sps in (rec["train_samples_per_second"][1:] or rec["train_samples_per_second"])
        ]
        tasks = list(records[0]["test_auc"])
        per_lib[lib] = {
            "version": records[0]["version"],
            "train_samples_per_second": round(statistics.median(epochs), 1),
            "inference_samples_per_second": round(
                statistics.median(rec["inference_samples_per_second"] for rec in records), 1
            ),
            "test_auc": {
                t: round(statistics.fmean(rec["test_auc"][t] for rec in records), 4) for t in tasks
            },
            "peak_rss_mib": max(rec["peak_rss_mib"] for rec in records),
            "vm_hwm_mib": max((rec["vm_hwm_mib"] or 0.0) for rec in records),
            "num_parameters": records[0]["num_parameters"],
        }
    comparisons = {}
    if "mmoe" in per_lib:
        ours = per_lib["mmoe"]
        for lib in libs:
            if lib == "mmoe":
                continue
            peer = per_lib[lib]
            comparisons[lib] = {
                "train_speedup": round(
                    ours["train_samples_per_second"] / peer["train_samples_per_second"], 2
                ),
                "inference_speedup": round(
                    ours["inference_samples_per_second"] / peer["inference_samples_per_second"], 2
                ),
                "auc_difference": {
                    t: round(ours["test_auc"][t] - peer["test_auc"][t], 4) for t in ours["test_auc"]
                },
            }
    return {"libraries": per_lib, "mmoe_vs": comparisons}


def format_table(summary: dict[str, Any]) -> str:
    per_lib, comparisons = summary["libraries"], summary["mmoe_vs"]
    tasks = list(next(iter(per_lib.values()))["test_auc"])
    header = ["library", "version", "train rows/s", "infer rows/s"]
    header += [f"AUC {t}" for t in tasks] + ["peak RSS MiB", "params"]
    rows = [header]
    for lib, s in per_lib.items():
        rows.append(
            [
                lib,
                s["version"],
                f"{s['train_samples_per_second']:,.0f}",
                f"{s['inference_samples_per_second']:,.0f}",
                *(f"{s['test_auc'][t]:.4f}" for t in tasks),
                f"{s['peak_rss_mib']:.0f}",
                f"{s['num_parameters']:,}",
            ]
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = [
        "  ".join(
            c.ljust(w) if i < 2 else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in rows
    ]
    for lib, c in comparisons.items():
        diffs = "  ".join(f"{t} {d:+.4f}" for t, d in c["auc_difference"].items())
        lines.append(
            f"mmoe / {lib}: training x{c['train_speedup']:.2f}, inference "
            f"x{c['inference_speedup']:.2f}; AUC mmoe - {lib}: {diffs}"
        )
    return "\n".join(lines)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def coordinate(args: argparse.Namespace) -> None:
    libs = [lib for lib in LIBRARIES if lib in args.libs]
    wall = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mmoe-peers-") as tmp:
        data_path = Path(tmp) / "census.npz"
        prepare_args = ["--prepare", "--data", str(data_path), "--data-dir", str(args.data_dir)]
        if args.rows is not None:
            prepare_args += ["--rows", str(args.rows)]
        t0 = time.perf_counter()
        sizes = _last_json(_run(prepare_args))
        print(
            f"prepared {sizes['train_rows']:,} train / {sizes['valid_rows']:,} valid / "
            f"{sizes['test_rows']:,} test rows in {time.perf_counter() - t0:.1f}s",
            flush=True,
        )
        rounds: list[dict[str, dict[str, Any]]] = []
        for r in range(1, args.rounds + 1):
            results = {}
            for lib in libs:
                worker = ["--worker", lib, "--data", str(data_path), "--epochs", str(args.epochs)]
                rec = _last_json(_run(worker))
                results[lib] = rec
                epochs = ", ".join(f"{v:,.0f}" for v in rec["train_samples_per_second"])
                print(
                    f"round {r} {lib:8s} train rows/s per epoch [{epochs}]  infer "
                    f"{rec['inference_samples_per_second']:,.0f} rows/s  "
                    f"({rec['worker_seconds']:.1f}s, load {rec['load_average'][0]:.1f}"
                    f"->{rec['load_average'][1]:.1f})",
                    flush=True,
                )
            rounds.append(results)
    summary = summarise(rounds, libs)
    wall_seconds = time.perf_counter() - wall
    table = format_table(summary)
    print()
    print(table)
    print(f"wall time {wall_seconds:.1f}s")
    report = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "torch": metadata.version("torch"),
        "python": platform.python_version(),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": THREADS,
        "configuration": {
            "config": str(CONFIG.relative_to(REPO_ROOT)),
            "embedding_dim": EMBEDDING_DIM,
            "num_experts": NUM_EXPERTS,
            "expert_hidden": EXPERT_HIDDEN,
            "tower_hidden": TOWER_HIDDEN,
            "batch_size": BATCH_SIZE,
            "learning_rate": LEARNING_RATE,
            "predict_batch_size": PREDICT_BATCH_SIZE,
            "inference_passes": INFERENCE_PASSES,
            "rounds": args.rounds,
            "epochs": args.epochs,
            "warm_up_epochs_excluded": 1 if args.epochs > 1 else 0,
            **sizes,
        },
        "summary": summary,
        "table": table,
        "wall_seconds": round(wall_seconds, 1),
        "rounds": rounds,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.out}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    p.add_argument("--epochs", type=int, default=3, help="epochs per worker; first is warm-up")
    p.add_argument("--rows", type=int, default=None, help="subsample the training rows")
    p.add_argument(
        "--libs",
        type=lambda s: [x.strip() for x in s.split(",") if x.strip()],
        default=list(LIBRARIES),
        help="comma-separated subset of " + ",".join(LIBRARIES),
    )
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--worker", choices=LIBRARIES, help=argparse.SUPPRESS)
    p.add_argument("--prepare", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    unknown = sorted(set(args.libs) - set(LIBRARIES))
    if unknown or not args.libs:
        p.error(f"--libs takes a subset of {','.join(LIBRARIES)}; got {','.join(args.libs)}")
    if args.rounds < 1 or args.epochs < 1 or (args.rows is not None and args.rows < 1):
        p.error("--rounds, --epochs and --rows must be positive")
    if (args.worker or args.prepare) and args.data is None:
        p.error("--worker and --prepare need --data FILE.npz")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.prepare:
        print(json.dumps(prepare(args.data_dir, args.rows, args.data)))
    elif args.worker:
        record = run_worker(args.worker, args.data, args.epochs)
        print(json.dumps(record), flush=True)
    else:
        coordinate(args)


if __name__ == "__main__":
    main()

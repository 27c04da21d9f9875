"""``mmoe export``: one self-contained ONNX file from a run directory, checked before it is written.

The file takes the raw feature columns (one input per column: strings for categorical
features, doubles for numeric ones with NaN = missing, dynamic batch) and returns one output per
task (probability of a binary task, value of a regression task: a standardised regression task's
output is ``z * std + mean`` in float64, in the target's own unit, as ``mmoe predict`` gives it)
and, for gated models, the gate weights ``gates (N, G, E)`` (for a seed ensemble, every member's
gates stacked along ``G``: see ``mmoe.gate_rows``); ``categorical_codes (N, Fc)`` (0 = unknown)
lets a server count unknown categories. Numeric encodings (bins, values, piecewise-linear parts)
are part of the graph. With ``tensor_inputs`` it takes the encoded ``categorical`` and ``numeric``
tensors instead. Before writing, onnxruntime scores rows of the run's validation data with
unknown categories, missing categories and missing numbers mixed in, and the export refuses to
write if any output differs from ``TrainedModel.predict`` by more than ``tolerance`` (measured in
standard deviations of the target for a standardised regression task).

Example:
    >>> import mmoe                                                     # doctest: +SKIP
    >>> report = mmoe.export("runs/g1", "g1.onnx")                      # doctest: +SKIP
    >>> report.max_difference                                           # doctest: +SKIP
    {'income': 5.9e-08, 'marital': 8.9e-08, 'gates': 1.2e-07}
"""

from __future__ import annotations

import hashlib
import json
import time
import warnings
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pyarrow as pa

from mmoe.artifacts import FORMAT_VERSION, WEIGHTS_FILE
from mmoe.errors import ArtifactError, DataError, MmoeError, MmoeWarning
from mmoe.io import write_bytes
from mmoe.models.ensemble import SeedEnsemble
from mmoe.onnx.graph import CATEGORICAL, CODES, GATES, NUMERIC, join, output_nodes
from mmoe.onnx.graph import preprocessing_graph as build_preprocessing
from mmoe.onnx.metadata import EXPORT_FORMAT, PREFIX, ModelInfo, table_feed
from mmoe.onnx.network import network_onnx
from mmoe.predictor import TrainedModel

#: Prefix of the category strings the self-check injects (never a training token).
UNSEEN = "\x01mmoe-unseen-"


@dataclass
class ExportReport:
    """What ``export`` wrote and how closely it matched ``TrainedModel.predict``."""

    path: Path
    inputs: list[str]
    outputs: list[str]
    rows_checked: int
    checked_on: str  # "validation data", "given data" or "synthetic rows"
    #: per output; a standardised regression task's in standard deviations of its target
    max_difference: dict[str, float] = field(default_factory=dict)
    #: the standardised regression tasks (their ``max_difference`` is in standard deviations)
    standardized: list[str] = field(default_factory=list)
    seconds: float = 0.0
    size_bytes: int = 0


def export(
    run_dir: str | Path,
    path: str | Path,
    *,
    tensor_inputs: bool = False,
    check_data: Any = None,
    check_rows: int = 1000,
    tolerance: float = 1e-5,
    exporter: str = "torchscript",
) -> ExportReport:
    """Export the model of ``run_dir`` to ``path`` (ONNX), after checking it against ``predict``.

    Args:
        run_dir: a run directory written by ``mmoe train``.
        path: the ONNX file to write (atomically; nothing is written if the check fails).
        tensor_inputs: take the encoded ``categorical``/``numeric`` tensors, not raw columns.
        check_data: table (DataFrame, pyarrow Table or path) to check on; ``None``: the run's
            validation split, or rows drawn from the vocabularies if that cannot be read.
        check_rows: how many rows of it to check (unknown categories and NaNs are mixed in).
        tolerance: largest absolute difference allowed on any output (for a standardised
            regression task: in standard deviations of its target, i.e. on the network's output).
        exporter: ``"torchscript"`` (fast, default) or ``"dynamo"`` (needs ``onnxscript``).

    Raises:
        ArtifactError: the export disagrees with ``predict`` (nothing written), or the run
            directory cannot be read.
    """
    start = time.perf_counter()
    run_dir = Path(run_dir)
    trained = TrainedModel.load(run_dir)
    model = build_onnx(trained, tensor_inputs, exporter, _sha256(run_dir / WEIGHTS_FILE))
    try:
        onnx.checker.check_model(model, full_check=True)
    except onnx.checker.ValidationError as exc:  # a bug, not a user error: keep the detail
        raise AssertionError(f"exported graph is invalid: {exc}") from exc
    payload = model.SerializeToString()
    table, where = _check_table(trained, check_data, check_rows)
    diffs = compare(trained, payload, table, tensor_inputs)
    worst = max(diffs, key=lambda k: diffs[k])
    if not diffs[worst] <= tolerance:  # NaN fails too
        raise ArtifactError(
            f"the exported model disagrees with `mmoe predict` on {where} by "
            f"{diffs[worst]:.3g} on {worst!r} (tolerance {tolerance:g}); {path} was not "
            "written; please report this with the run's config.json"
        )
    write_bytes(path, payload)
    return ExportReport(
        path=Path(path),
        inputs=[i.name for i in model.graph.input],
        outputs=[o.name for o in model.graph.output],
        rows_checked=table.num_rows,
        checked_on=where,
        max_difference=diffs,
        standardized=[t for t in trained.task_names if t in trained.preprocessor.target_stats_],
        seconds=time.perf_counter() - start,
        size_bytes=len(payload),
    )


def build_onnx(
    trained: TrainedModel, tensor_inputs: bool, exporter: str = "torchscript", weights_sha: str = ""
) -> onnx.ModelProto:
    """The joined ONNX model of ``trained`` with its metadata (not yet checked)."""
    pre = trained.preprocessor
    tasks = [(t.name, t.type) for t in pre.tasks]
    features = pre.features
    for feat in features.numeric:
        if feat.transform not in ("none", "log1p"):
            raise ArtifactError(
                f"numeric feature {feat.name!r} uses transform {feat.transform!r}, which "
                "mmoe export cannot express in ONNX yet; export with --tensor-inputs instead"
            )
    _check_names(trained, tensor_inputs)
    network = network_onnx(trained.model, exporter)
    before = None
    if not tensor_inputs:
        stats = pre.numeric_stats_
        numeric = [
            (f.name, f.transform, stats[f.name]["mean"], stats[f.name]["std"])
            for f in features.numeric
        ]
        order = [f.name for f in features.categorical]
        encodings = {
            name: (enc.kind, enc.keep_raw, list(enc.values))
            for name, enc in pre.numeric_encodings_.items()
        }
        before = build_preprocessing(pre.vocabularies_, numeric, order, encodings or None)
    has_codes = not tensor_inputs and bool(features.categorical)
    after = output_nodes(tasks, trained.model.has_gates, has_codes, pre.target_stats_)
    model = join(network, before, after, name=trained.config.name or "mmoe")
    props = metadata(trained, tensor_inputs, weights_sha)
    onnx.helper.set_model_props(model, props)
    model.doc_string = (
        f"mmoe {props[PREFIX + 'architecture']} model; tasks: "
        + ", ".join(n for n, _ in tasks)
        + "; outputs: "
        + _outputs_text(trained)
        + (
            "; inputs: one per feature column (categorical: strings, numeric: doubles, NaN = "
            "missing)"
            if not tensor_inputs
            else "; inputs: encoded categorical (int64) and numeric (float32) tensors"
        )
    )
    return model


def metadata(trained: TrainedModel, tensor_inputs: bool, weights_sha: str) -> dict[str, str]:
    """The ``mmoe.*`` metadata properties (see ``mmoe.onnx.metadata``)."""
    pre = trained.preprocessor
    feats: list[dict[str, Any]] = [
        {"name": f.name, "kind": "categorical", "vocabulary_size": len(pre.vocabularies_[f.name])}
        for f in pre.features.categorical
    ]
    encodings = pre.numeric_encodings_
    feats += [
        {
            "name": f.name,
            "kind": "numeric",
            "transform": f.transform,
            **({"encoding": encodings[f.name].to_dict()} if f.name in encodings else {}),
        }
        for f in pre.features.numeric
    ]
    model = trained.model
    members = len(model.members) if isinstance(model, SeedEnsemble) else 1
    props = {
        "export_format": str(EXPORT_FORMAT),
        "version": version("mmoe"),
        "run_format_version": str(FORMAT_VERSION),
        "architecture": trained.config.model.name,
        "inputs": "tensor" if tensor_inputs else "raw",
        "tasks": json.dumps([{"name": t.name, "type": t.type} for t in pre.tasks]),
        "features": json.dumps(feats),
        "missing_category": missing_token(pre.vocabularies_),
        "target_stats": json.dumps(pre.target_stats_),
        "outputs": _outputs_text(trained),
        "ensemble_size": str(members),
        "gate_rows": json.dumps([list(r) for r in model.gate_rows]),
        "expert_names": json.dumps(list(model.expert_names)),
        "weights_sha256": weights_sha,
    }
    return {PREFIX + k: v for k, v in props.items()}


def _outputs_text(trained: TrainedModel) -> str:
    """One sentence per output: what its values are (the ``mmoe.outputs`` property)."""
    pre, model = trained.preprocessor, trained.model
    parts = []
    for t in pre.tasks:
        if t.type == "binary":
            parts.append(f"{t.name}: probability of the positive class (float32)")
        elif t.name in pre.target_stats_:
            parts.append(
                f"{t.name}: value in the target's own unit, z * std + mean of the model's "
                "standardised output (float64)"
            )
        else:
            parts.append(f"{t.name}: value (float32)")
    if model.has_gates:
        if isinstance(model, SeedEnsemble):
            parts.append(
                f"gates: (N, G, E) gate weights of all {len(model.members)} ensemble members "
                "stacked along G (not averaged: members' experts are not aligned); row g is "
                "gate_rows[g] = [member, gate name]"
            )
        else:
            parts.append("gates: (N, G, E) gate weights; row g is gate_rows[g] = [level, name]")
    return "; ".join(parts)


def missing_token(vocabularies: dict[str, list[str]]) -> str:
    """A string in no vocabulary: what a missing categorical value is sent as (encodes to 0)."""
    tokens = {t for v in vocabularies.values() for t in v}
    token = "\x00missing"
    while token in tokens:
        token += "\x00"
    return token


def compare(
    trained: TrainedModel, payload: bytes, table: pa.Table, tensor_inputs: bool
) -> dict[str, float]:
    """Largest absolute difference per output between onnxruntime and ``predict``."""
    import onnxruntime as ort

    session = ort.InferenceSession(payload, providers=["CPUExecutionProvider"])
    info = ModelInfo.from_props(session.get_modelmeta().custom_metadata_map)
    if tensor_inputs:
        batch = trained.preprocessor.transform(table, labels=False)
        given = {i.name for i in session.get_inputs()}
        feed = {
            CATEGORICAL: batch.categorical.numpy().astype(np.int64),
            NUMERIC: batch.numeric.numpy(),
        }
        feed = {k: v for k, v in feed.items() if k in given}
    else:
        feed = table_feed(table, info)
    names = [o.name for o in session.get_outputs() if o.name != CODES]
    got = dict(zip(names, session.run(names, feed), strict=True))
    with warnings.catch_warnings():  # the unseen categories are the check's own injections
        warnings.simplefilter("ignore", MmoeWarning)
        expected = trained.predict(table)
        gates = trained.gate_weights(table) if GATES in got else None
    # A standardised regression task is compared in its standard deviations (the network's own
    # unit): the network's float32 rounding, identical for every task, is scaled by ``std`` in
    # the target's unit, while the affine map itself is exact (float64 on both sides).
    scale = {t: s["std"] for t, s in trained.preprocessor.target_stats_.items()}
    diffs = {
        task: float(np.max(np.abs(got[task] - expected[task].to_numpy()), initial=0.0))
        / scale.get(task, 1.0)
        for task in trained.task_names
    }
    if gates is not None:
        diffs[GATES] = float(np.max(np.abs(got[GATES] - gates), initial=0.0))
    return diffs


def _check_table(trained: TrainedModel, data: Any, rows: int) -> tuple[pa.Table, str]:
    """Rows to check the export on, with unknown/missing categories and NaNs mixed in."""
    from mmoe.data.tables import as_arrow

    pre = trained.preprocessor
    if data is not None:
        table, where = as_arrow(trained._table(data)), "the given data"
    else:
        try:
            from mmoe.data.sources import load_splits

            table, where = load_splits(trained.config.data).valid, "validation data"
        except (MmoeError, OSError):
            table, where = _synthetic_rows(trained, rows), "rows drawn from the vocabularies"
    if table.num_rows == 0:
        raise DataError("no rows to check the export on; give rows with --check-data")
    table = table.slice(0, rows).select(pre.features.column_names)
    return _inject_unknowns(table, trained), where


def _inject_unknowns(table: pa.Table, trained: TrainedModel) -> pa.Table:
    """Every 7th row gets an unseen category, every 11th a missing one, every 5th a NaN number."""
    from mmoe.data.tables import canonical_strings, to_float

    n = table.num_rows
    rows = np.arange(n)
    columns = {}
    for j, feat in enumerate(trained.preprocessor.features.categorical):
        text = np.asarray(canonical_strings(table.column(feat.name)).to_pylist(), dtype=object)
        text[(rows + j) % 7 == 0] = f"{UNSEEN}{j}"
        text[(rows + j) % 11 == 3] = None
        columns[feat.name] = pa.array(text.tolist(), type=pa.string())
    for j, feat in enumerate(trained.preprocessor.features.numeric):
        x = to_float(table.column(feat.name), feat.name).copy()
        x[(rows + j) % 5 == 1] = np.nan
        columns[feat.name] = pa.array(x, type=pa.float64())
    return pa.table({name: columns[name] for name in table.column_names})


def _synthetic_rows(trained: TrainedModel, n: int) -> pa.Table:
    """Rows drawn from the fitted state: vocabulary tokens and numbers around the means."""
    pre = trained.preprocessor
    rng = np.random.default_rng(0)
    columns: dict[str, Any] = {}
    for feat in pre.features.categorical:
        vocab = pre.vocabularies_[feat.name] or ["?"]
        columns[feat.name] = pa.array([vocab[i] for i in rng.integers(0, len(vocab), n)])
    for feat in pre.features.numeric:
        stats = pre.numeric_stats_[feat.name]
        columns[feat.name] = pa.array(rng.normal(stats["mean"], stats["std"], n))
    return pa.table(columns)


def _check_names(trained: TrainedModel, tensor_inputs: bool) -> None:
    """Every input and output name of the file must be distinct."""
    inputs = [CATEGORICAL, NUMERIC] if tensor_inputs else trained.preprocessor.features.column_names
    outputs = [*trained.task_names, GATES, CODES]
    for name in trained.task_names:
        if name in inputs or outputs.count(name) > 1:
            raise ArtifactError(
                f"task {name!r} has the name of a model input or of the {GATES!r}/{CODES!r} "
                "output, and ONNX names must be distinct; rename the task in the config"
            )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


__all__ = ["ExportReport", "build_onnx", "export", "missing_token"]

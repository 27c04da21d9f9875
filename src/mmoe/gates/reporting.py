"""``mmoe gates``: what a trained model's gates do on a table, as numbers, figures and a page.

Run directory + data → ``gates.json`` (every number), PNG figures and a self-contained
``report.html``. The rows go through the model in slices and only sums are kept
(:class:`mmoe.gates.stats.GateStats`), so the data can be as large as the preprocessed table.

Command line and Python::

    mmoe gates runs/g1 test --by sex --by education -o reports/g1-gates
    >>> import mmoe.gates
    >>> result = mmoe.gates.report("runs/g1", "test", by=["sex"])  # doctest: +SKIP
    >>> result.data["gates"][0]["mean_weight"]                    # doctest: +SKIP
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
from tqdm.auto import tqdm

from mmoe.data.sources import load_splits, read_any
from mmoe.data.tables import as_arrow, canonical_strings, column
from mmoe.errors import ArtifactError, ConfigError, DataError
from mmoe.gates.analysis import analyse
from mmoe.gates.stats import GateStats
from mmoe.io import write_bytes, write_json
from mmoe.predictor import TrainedModel, load

SPLITS = ("train", "valid", "test")
OTHER = "(other)"
MISSING = "(missing)"
#: Numeric ``--by`` columns with more distinct values than ``top`` are cut into this many
#: quantile bins.
NUMERIC_BINS = 5


@dataclass
class GateReport:
    """What :func:`report` produced: the data of ``gates.json`` and the files written."""

    data: dict[str, Any]
    out: Path | None = None
    files: list[Path] = field(default_factory=list)

    @property
    def warnings(self) -> list[str]:
        return self.data["warnings"]


def segment_codes(values: pa.ChunkedArray | pa.Array, top: int) -> tuple[np.ndarray, list[str]]:
    """Each row's segment code and the segment names of a ``--by`` column.

    Text (and numbers with at most ``top`` distinct values): the ``top`` most frequent values
    (ties by text), then ``(other)`` for the rest and ``(missing)`` for empty cells. Numbers
    with more distinct values: ``NUMERIC_BINS`` quantile bins.

    Example:
        >>> codes, names = segment_codes(pa.array(["a", "b", "a", None, "c"]), top=1)
        >>> codes.tolist(), names
        ([0, 1, 0, 2, 1], ['a', '(other)', '(missing)'])
    """
    is_number = pa.types.is_integer(values.type) or pa.types.is_floating(values.type)
    if is_number and len(pc.unique(values)) > top:
        return _quantile_codes(values)
    text = canonical_strings(values)
    counts = pc.value_counts(pc.drop_null(text))
    pairs = sorted(
        ((v.as_py(), c.as_py()) for v, c in zip(counts.field(0), counts.field(1), strict=True)),
        key=lambda p: (-p[1], p[0]),
    )
    kept = [v for v, _ in pairs[:top]]
    names = [*kept]
    index = pc.index_in(text, value_set=pa.array(kept, type=pa.string()))
    codes = pc.fill_null(index, -1).to_numpy(zero_copy_only=False).astype(np.int64)
    if len(pairs) > top:
        names.append(OTHER)
        codes[codes < 0] = len(kept)
    missing = text.is_null().to_numpy(zero_copy_only=False)
    if missing.any():
        names.append(MISSING)
        codes[missing] = len(names) - 1
    return codes, names


def _quantile_codes(values: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, list[str]]:
    x = values.cast(pa.float64()).to_numpy(zero_copy_only=False)
    finite = np.isfinite(x)
    edges = np.unique(np.quantile(x[finite], np.linspace(0, 1, NUMERIC_BINS + 1)))
    codes = np.searchsorted(edges[1:-1], x, side="right").astype(np.int64)
    names = [
        f"[{lo:.3g}, {hi:.3g}]" if i == len(edges) - 2 else f"[{lo:.3g}, {hi:.3g})"
        for i, (lo, hi) in enumerate(itertools.pairwise(edges))
    ]
    if not finite.all():
        names.append(MISSING)
        codes[~finite] = len(names) - 1
    return codes, names


def _read_data(trained: TrainedModel, data: Any) -> tuple[pa.Table, str]:
    """The table to report on and how to name it: a split name, a file, or a table."""
    if isinstance(data, str | Path):
        if str(data) in SPLITS and not Path(data).exists():
            return load_splits(trained.config.data).get(str(data)), f"{data} split of the run"
        if not Path(data).exists():
            raise DataError(f"data file not found: {data} (or name a split: train, valid, test)")
        return read_any(data, trained.config.data), str(data)
    table = as_arrow(data)
    return table, f"a table of {table.num_rows} rows"


def gate_statistics(
    trained: TrainedModel,
    data: Any,
    by: Sequence[str] = (),
    top: int = 8,
    batch_size: int = 16_384,
    progress: bool = False,
) -> dict[str, Any]:
    """The report's numbers (the content of ``gates.json``) without writing any file.

    Args:
        trained: a loaded run (``mmoe.load``).
        data: ``train``/``valid``/``test`` (the run's own splits), a CSV/Parquet path, a pandas
            DataFrame or a pyarrow Table, with every feature column. With the task label
            columns, the label correlation is computed too.
        by: columns to split the gate weights by (any column of ``data``, input or not).
        top: most frequent values per ``by`` column kept; the rest are grouped.
        batch_size: rows per forward pass.
        progress: show a progress bar on stderr.
    """
    model = trained.model
    if not model.has_gates:
        raise ConfigError(
            f"this run's model ({trained.config.model.name}) has no gates; gate reports need a "
            "gated architecture such as mmoe or omoe"
        )
    if top < 1:
        raise ConfigError(f"top must be at least 1 (got {top})")
    table, name = _read_data(trained, data)
    if table.num_rows == 0:
        raise DataError(f"{name} has no rows")
    by = list(dict.fromkeys(by))
    segments = {col: segment_codes(column(table, col, "--by"), top) for col in by}
    batch = trained.preprocessor.transform(table)  # labels read when every label column is there
    stats = GateStats(
        len(model.gate_rows),
        len(model.expert_names),
        pairs=True,
        top=True,
        segments={col: len(names) for col, (_, names) in segments.items()},
        keep_entropy=True,
    )
    codes = {col: torch.from_numpy(c) for col, (c, _) in segments.items()}
    model.eval()
    with (
        torch.inference_mode(),
        tqdm(total=len(batch), unit="row", disable=not progress, desc="gates") as bar,
    ):
        for start in range(0, len(batch), batch_size):
            part = batch.slice(start, start + batch_size)
            _, gates = model(part.categorical, part.numeric, return_gates=True)
            stats.update(gates, {c: v[start : start + batch_size] for c, v in codes.items()})
            bar.update(len(part))
    labels = None
    if batch.labels is not None and batch.label_mask is not None:
        labels = (batch.labels.numpy(), batch.label_mask.numpy())
    result = analyse(
        stats,
        model.gate_rows,
        model.expert_names,
        model.task_names,
        {col: names for col, (_, names) in segments.items()},
        labels,
    )
    result["data"] = name
    result["model"] = trained.config.model.name
    result["row_entropy"] = stats.entropies().numpy()  # dropped before writing JSON
    return result


def report(
    run_dir: str | Path,
    data: Any,
    by: Sequence[str] = (),
    out: str | Path | None = None,
    top: int = 8,
    batch_size: int = 16_384,
    progress: bool = False,
) -> GateReport:
    """Write the gate report of the run in ``run_dir`` on ``data`` into ``out``.

    ``out`` (default ``RUN_DIR/gates``) receives ``gates.json``, ``report.html`` (figures
    inline; opens offline in any browser) and the figures as PNG files: ``gate_weights.png``,
    ``utilisation.png``, ``entropy.png``, ``relatedness.png`` and ``by_<column>.png`` per
    ``by`` column. Other arguments as in :func:`gate_statistics`.
    """
    from mmoe.gates import plots
    from mmoe.gates.html import render_html

    run_dir = Path(run_dir)
    trained = load(run_dir)
    out = Path(out) if out is not None else run_dir / "gates"
    _check_writable(out)
    plots._pyplot()  # fail on a missing matplotlib before the long part
    result = gate_statistics(trained, data, by, top, batch_size, progress)
    row_entropy = result.pop("row_entropy")
    slugs = _slugs(list(result["segments"]))
    for col, seg in result["segments"].items():
        seg["figure"] = f"by_{slugs[col]}.png"
    figures = {
        "gate_weights.png": plots.weights_figure(result),
        "utilisation.png": plots.utilisation_figure(result),
        "entropy.png": plots.entropy_figure(result, row_entropy),
        "relatedness.png": plots.relatedness_figure(result),
    }
    for col, seg in result["segments"].items():
        figures[seg["figure"]] = plots.segment_figure(result, col)
    result = {"run_dir": str(run_dir), **result}
    created = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")  # noqa: UP017
    model = trained.model
    meta = {
        "run directory": str(run_dir),
        "model": f"{trained.config.model.name}: {len(model.expert_names)} experts, "
        f"{len(model.gate_rows)} gates",
        "tasks": ", ".join(model.task_names),
        "data": f"{result['data']} ({result['rows']:,} rows)",
        "split by": ", ".join(result["segments"]) or "–",
        "written": f"{created} by mmoe {version('mmoe')}",
    }
    page = render_html({"title": f"Gates of {run_dir.name}", "meta": meta, "report": result},
                       figures)  # fmt: skip
    files = []
    for file_name, png in figures.items():
        write_bytes(out / file_name, png)
        files.append(out / file_name)
    write_json(out / "gates.json", result)
    write_bytes(out / "report.html", page.encode("utf-8"))
    files += [out / "gates.json", out / "report.html"]
    return GateReport(result, out, files)


def _check_writable(out: Path) -> None:
    """Fail before any work when ``out`` cannot become a directory we can write in."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".mmoe-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ArtifactError(
            f"cannot write the report to {out}: {reason}; pass another -o DIR"
        ) from None


def _slugs(columns: list[str]) -> dict[str, str]:
    """File-name-safe, distinct names for the ``by`` columns."""
    seen: set[str] = set()
    result = {}
    for col in columns:
        base = re.sub(r"[^A-Za-z0-9]+", "_", col).strip("_").lower() or "column"
        slug, n = base, 2
        while slug in seen:
            slug, n = f"{base}_{n}", n + 1
        seen.add(slug)
        result[col] = slug
    return result


__all__ = ["GateReport", "gate_statistics", "report", "segment_codes"]

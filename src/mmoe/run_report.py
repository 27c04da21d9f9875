"""What ``mmoe show RUN`` prints and draws: a run's summary and its training curves.

Reads only the run directory's JSON files (``config.json``, ``metrics.json``,
``metrics.jsonl``, ``provenance.json``); torch is not imported.

Example:
    >>> history = [{"step": 10, "train_loss": {"y": 0.5}, "valid": {"y": {"auc": 0.7}}}]
    >>> curve_series(history)["y"]["valid auc"]
    ([10], [0.7])
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mmoe.errors import ArtifactError
from mmoe.io import atomic_path, read_json

CURVES_FILE = "curves.png"


def read_history(run_dir: Path) -> list[dict[str, Any]]:
    """The evaluation records of ``metrics.jsonl`` (empty when the file is absent)."""
    import json

    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return []
    try:
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{path} is corrupt (not JSON lines: {exc})") from None


def summary(run_dir: Path) -> str:
    """A few lines: model, tasks, steps, best evaluation, metrics, environment, data."""
    config = read_json(run_dir / "config.json")
    metrics = read_json(run_dir / "metrics.json") if (run_dir / "metrics.json").is_file() else {}
    model = config.get("model", {})
    sizes = {k: v for k, v in model.items() if k != "name"}
    lines = [f"run        {run_dir}"]
    if config.get("name"):
        lines.append(f"name       {config['name']}")
    lines.append(f"model      {model.get('name')}  {_compact(sizes)}")
    tasks = ", ".join(f"{t['name']} ({t['type']}, column {t['column']!r})" for t in config["tasks"])
    lines.append(f"tasks      {tasks}")
    feats = config.get("features", {})
    lines.append(
        f"features   {len(feats.get('categorical', []))} categorical, "
        f"{len(feats.get('numeric', []))} numeric"
    )
    if metrics:
        best = metrics.get("best") or {}
        monitor = metrics.get("monitor", {})
        stopped = "stopped early" if metrics.get("stopped_early") else "ran all epochs"
        seconds = metrics.get("seconds", {}).get("total")
        lines.append(
            f"training   {metrics.get('steps')} steps, {stopped}; best step {best.get('step')} "
            f"by valid {monitor.get('task')} {monitor.get('metric')}"
            + (f"; {seconds:.1f}s" if isinstance(seconds, int | float) else "")
        )
        for split in ("valid", "test"):
            for task, row in (metrics.get(split) or {}).items():
                values = "  ".join(
                    f"{k} {'-' if v is None else f'{v:.4f}'}" for k, v in row.items() if k != "rows"
                )
                lines.append(f"{split:<10} {task}: {values}  ({row.get('rows')} rows)")
    provenance_path = run_dir / "provenance.json"
    if provenance_path.is_file():
        prov = read_json(provenance_path)
        env, data = prov.get("environment", {}), prov.get("data", {})
        commit = env.get("git_commit")
        lines.append(
            f"trained    {env.get('time_utc')}  mmoe {env.get('mmoe')}, torch {env.get('torch')}, "
            f"python {env.get('python')}"
            + (f", git {commit[:10]}{' (dirty)' if env.get('git_dirty') else ''}" if commit else "")
        )
        if env.get("command"):
            lines.append(f"command    {env['command']}")
        rows = ", ".join(f"{k} {v['rows']}" for k, v in data.get("splits", {}).items())
        lines.append(f"data       {data.get('source')}: {rows} rows")
        for f in data.get("files", []):
            digest = f.get("sha256", "")[:16] or f"mtime {f.get('mtime_utc')}"
            lines.append(f"           {f['path']}  {f['bytes']:,} bytes  {digest}")
    return "\n".join(lines)


def curve_series(
    history: list[dict[str, Any]],
) -> dict[str, dict[str, tuple[list[int], list[float]]]]:
    """Per task: ``{"train loss": (steps, values), "valid auc": ..., ...}`` (nulls dropped)."""
    series: dict[str, dict[str, tuple[list[int], list[float]]]] = {}
    for record in history:
        step = record["step"]
        for task, loss in record.get("train_loss", {}).items():
            _add(series, task, "train loss", step, loss)
        for task, row in record.get("valid", {}).items():
            for metric, value in row.items():
                if metric != "rows":
                    _add(series, task, f"valid {metric}", step, value)
    return series


def _add(series: dict[str, Any], task: str, name: str, step: int, value: Any) -> None:
    if value is None or value != value:
        return
    steps, values = series.setdefault(task, {}).setdefault(name, ([], []))
    steps.append(step)
    values.append(float(value))


def curves_figure(history: list[dict[str, Any]], path: Path, best_step: int | None) -> None:
    """One column per task: losses on top (train loss, valid log loss or MSE), scores below."""
    from mmoe.experiments.plots import _pyplot

    plt = _pyplot()
    series = curve_series(history)
    tasks = list(series)
    fig, axes = plt.subplots(2, len(tasks), figsize=(4.2 * len(tasks), 6), squeeze=False)
    for j, task in enumerate(tasks):
        top, bottom = axes[0][j], axes[1][j]
        for name, (steps, values) in series[task].items():
            is_loss = name in ("train loss", "valid logloss", "valid mse")
            ax = top if is_loss else bottom
            ax.plot(steps, values, marker="o", markersize=3, label=name)
        top.set_title(task)
        top.set_ylabel("loss")
        losses = [v for line in top.lines for v in line.get_ydata()]
        if losses and min(losses) > 0 and max(losses) > 5 * min(losses):
            # The first epoch's mean loss would dwarf the rest on a linear axis.
            from matplotlib.ticker import FuncFormatter

            top.set_yscale("log")
            plain = FuncFormatter(lambda v, _: f"{v:g}")
            top.yaxis.set_major_formatter(plain)
            top.yaxis.set_minor_formatter(plain)
            top.set_ylabel("loss (log scale)")
        bottom.set_ylabel("validation metric")
        bottom.set_xlabel("training step")
        for ax in (top, bottom):
            if best_step is not None:
                ax.axvline(best_step, color="grey", linestyle=":", linewidth=1)
            if ax.lines:
                ax.legend(fontsize=8)
            ax.grid(alpha=0.3)
    fig.suptitle("training curves (dotted line: the kept evaluation)", fontsize=10)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def _compact(values: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in values.items())


__all__ = ["CURVES_FILE", "curve_series", "curves_figure", "read_history", "summary"]

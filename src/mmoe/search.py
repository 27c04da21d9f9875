"""Hyper-parameter search on any run config, selected on validation data only.

``mmoe tune CONFIG --trials N --param KEY=SPEC ...`` draws each trial's values with Optuna's TPE
sampler (the ``tune`` extra), trains the config with them as ``--set`` overrides, and scores it by
the config's monitored validation metric (``training.monitor_task`` / ``monitor_metric``: the
first task's AUC or MSE by default) at its best evaluation. The test split is never read.
Every trial is recorded with the ``mmoe train`` command that reruns it.

A ``SPEC`` is one of::

    int:LOW:HIGH[:log]        model.num_experts=int:2:16
    float:LOW:HIGH[:log]      training.learning_rate=float:1e-4:1e-2:log
    choice:[V1, V2, ...]      model.expert_hidden=choice:[[16],[32],[64,32]]  (a YAML list)

Example:
    >>> parse_param("model.num_experts=int:2:16")
    Param(key='model.num_experts', kind='int', low=2, high=16, log=False, choices=())
    >>> parse_param("model.expert_hidden=choice:[[16],[32,16]]").choices
    ([16], [32, 16])
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import yaml

from mmoe.errors import ConfigError


@dataclass(frozen=True)
class Param:
    """One searched key: an int or float range (optionally log-scaled) or a list of choices."""

    key: str
    kind: str  # int | float | choice
    low: float = 0
    high: float = 0
    log: bool = False
    choices: tuple[Any, ...] = ()


def parse_param(text: str) -> Param:
    """A :class:`Param` from ``KEY=SPEC``, or one ``ConfigError`` line saying what is wrong."""
    key, sep, spec = text.partition("=")
    kind, _, rest = spec.partition(":")
    usage = (
        f"--param {text!r}: expected KEY=int:LOW:HIGH[:log], KEY=float:LOW:HIGH[:log] or "
        "KEY=choice:[A, B, ...]"
    )
    if not sep or not key.strip() or kind not in ("int", "float", "choice"):
        raise ConfigError(usage)
    key = key.strip()
    if kind == "choice":
        try:
            values = yaml.safe_load(rest)
        except yaml.YAMLError:
            values = None
        if not isinstance(values, list) or not values:
            raise ConfigError(usage)
        return Param(key, "choice", choices=tuple(values))
    parts = rest.split(":")
    if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] != "log"):
        raise ConfigError(usage)
    try:
        cast = int if kind == "int" else float
        low, high = cast(parts[0]), cast(parts[1])
    except ValueError:
        raise ConfigError(usage) from None
    log = len(parts) == 3
    if low >= high or (log and low <= 0):
        raise ConfigError(f"--param {text!r}: need LOW < HIGH (and LOW > 0 with :log)")
    return Param(key, kind, low, high, log)


@dataclass(frozen=True)
class SearchTrial:
    """One training run of a search (picklable, for worker processes)."""

    index: int
    config: str
    overrides: tuple[str, ...]  # the base overrides, then the trial's own values
    values: tuple[str, ...]  # the trial's own values as KEY=VALUE (what the search chose)


def run_search_trial(trial: SearchTrial) -> dict[str, Any]:
    """Train one trial in memory; return its values, validation metrics and time."""
    from mmoe.training.run import train

    start = time.perf_counter()
    run = train(trial.config, overrides=list(trial.overrides), progress=False)
    best = run.metrics["best"]
    monitor = run.metrics["monitor"]
    value = best["valid"][monitor["task"]][monitor["metric"]]
    return {
        **asdict(trial),
        "value": value,
        "monitor": monitor,
        "valid": best["valid"],
        "best_step": best["step"],
        "best_epoch": best["epoch"],
        "seconds": round(time.perf_counter() - start, 1),
    }


class OptunaSearch:
    """Draws values with Optuna's TPE sampler (seeded), told each trial's validation metric."""

    def __init__(self, params: Sequence[Param], maximize: bool, seed: int = 0) -> None:
        try:
            import optuna
        except ImportError:
            raise ConfigError("mmoe tune needs optuna: pip install 'mmoe[tune]'") from None
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.params = list(params)
        sampler = optuna.samplers.TPESampler(seed=seed)
        direction = "maximize" if maximize else "minimize"
        self.study = optuna.create_study(direction=direction, sampler=sampler)
        self._pending: dict[int, Any] = {}

    def ask(self, index: int) -> tuple[str, ...]:
        trial = self.study.ask()
        self._pending[index] = trial
        values = []
        for p in self.params:
            if p.kind == "int":
                v: Any = trial.suggest_int(p.key, int(p.low), int(p.high), log=p.log)
            elif p.kind == "float":
                v = trial.suggest_float(p.key, p.low, p.high, log=p.log)
            else:
                v = p.choices[trial.suggest_categorical(p.key, list(range(len(p.choices))))]
            values.append(f"{p.key}={flow_yaml(v)}")
        return tuple(values)

    def tell(self, index: int, value: float | None) -> None:
        import optuna

        trial = self._pending.pop(index)
        if value is None or value != value:
            self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
        else:
            self.study.tell(trial, value)


class ListSearch:
    """Trials given in advance (e.g. a seeded random draw), in order."""

    def __init__(self, drawn: Sequence[Sequence[str]]) -> None:
        self.drawn = [tuple(d) for d in drawn]

    def ask(self, index: int) -> tuple[str, ...]:
        return self.drawn[index]

    def tell(self, index: int, value: float | None) -> None:
        pass


def run_search(
    config: str,
    search: OptunaSearch | ListSearch,
    trials: int,
    base_overrides: Sequence[str] = (),
    workers: int = 1,
    progress: bool = True,
    run_trial: Callable[[SearchTrial], dict[str, Any]] = run_search_trial,
) -> list[dict[str, Any]]:
    """Train ``trials`` trials, ``workers`` at a time (each round asked, run, then told)."""
    from mmoe.experiments.parallel import run_jobs

    results: list[dict[str, Any]] = []
    index = 0
    while index < trials:
        batch = []
        for i in range(index, min(index + max(workers, 1), trials)):
            values = search.ask(i)
            batch.append(SearchTrial(i, config, (*base_overrides, *values), values))
        done = run_jobs(run_trial, batch, workers, desc=f"trials {index + 1}-", progress=progress)
        for result in done:
            search.tell(result["index"], result.get("value"))
            results.append(result)
        index += len(batch)
    return results


def rerun_command(config: str, trial: dict[str, Any]) -> str:
    """The ``mmoe train`` command that trains this trial's configuration again."""
    sets = " ".join(f"--set {shlex.quote(o)}" for o in trial["overrides"])
    return f"mmoe train {shlex.quote(config)} {sets}".rstrip()


def ranked(results: Sequence[dict[str, Any]], maximize: bool) -> list[dict[str, Any]]:
    """Trials best first (failed ones, with no value, last; earlier index first on ties)."""

    def key(r: dict[str, Any]) -> tuple[int, float, int]:
        v = r.get("value")
        if v is None or v != v:
            return (1, 0.0, r["index"])
        return (0, -v if maximize else v, r["index"])

    return sorted(results, key=key)


def format_results(results: Sequence[dict[str, Any]], maximize: bool) -> str:
    """A markdown table of every trial, best first."""
    if not results:
        return "(no trials)"
    monitor = results[0]["monitor"]
    lines = [
        f"| trial | valid {monitor['task']} {monitor['metric']} | best epoch | seconds | values |",
        "|---|---|---|---|---|",
    ]
    for r in ranked(results, maximize):
        v = r.get("value")
        shown = "-" if v is None or v != v else f"{v:.4f}"
        lines.append(
            f"| {r['index']} | {shown} | {r['best_epoch']} | {r['seconds']:.0f} "
            f"| {' '.join(r['values']) or '(the config as given)'} |"
        )
    return "\n".join(lines)


def flow_yaml(value: Any) -> str:
    """A value as one line of YAML, as ``--set`` reads it: ``[32, 16]``, ``0.001``."""
    if isinstance(value, float):
        return repr(value)
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("\n...").strip()


__all__ = [
    "ListSearch",
    "OptunaSearch",
    "Param",
    "SearchTrial",
    "format_results",
    "parse_param",
    "ranked",
    "rerun_command",
    "run_search",
    "run_search_trial",
]

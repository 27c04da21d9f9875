"""One training run of the census study, as plain data (what worker processes receive)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CensusJob:
    """One training run of the census study."""

    group: int
    method: str
    seed: int
    config: str  # path of the run config
    data_dir: str
    task: str | None = None  # single-task runs: the one task this model learns
    overrides: tuple[str, ...] = ()  # --set values applied to the network's config
    predictions_dir: str | None = None  # where a network run saves its valid/test logits

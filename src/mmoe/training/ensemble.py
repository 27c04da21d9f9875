"""Seed ensembles in training: the members' configs and the ensemble's metrics record.

``mmoe train CONFIG --seeds K`` (``training.ensemble_size: K``) trains member ``k`` with
``training.seed + k`` and the same data, preprocessor and hyper-parameters, each with its own
early stopping on the validation data; the run directory then holds one
:class:`~mmoe.models.ensemble.SeedEnsemble` (mean of the members' logits) and its metrics, with
every member's metrics under ``members``. ``mmoe.training.run.train`` drives it.
"""

from __future__ import annotations

from typing import Any

from mmoe.config import RunConfig


def member_configs(config: RunConfig) -> list[RunConfig]:
    """One single-model config per member: seeds ``seed .. seed + K - 1``.

    Example:
        >>> from mmoe.config import parse_config
        >>> cfg = parse_config({"data": {"source": "synthetic"}, "training": {"ensemble_size": 3}})
        >>> [(c.training.seed, c.training.ensemble_size) for c in member_configs(cfg)]
        [(0, 1), (1, 1), (2, 1)]
    """
    base = config.training.seed
    return [
        config.model_copy(
            update={
                "training": config.training.model_copy(
                    update={"seed": base + k, "ensemble_size": 1}
                )
            }
        )
        for k in range(config.training.ensemble_size)
    ]


def ensemble_metrics(
    members: list[dict[str, Any]],
    valid: dict[str, Any],
    test: dict[str, Any] | None,
    seeds: list[int],
) -> dict[str, Any]:
    """The ``metrics.json`` of an ensemble: its own valid/test metrics, the members' records.

    ``steps`` and the seconds add up over members; ``best`` is the first member's record (the
    keys a single run has, so tools reading ``metrics.json`` keep working).
    """
    metrics: dict[str, Any] = {
        "monitor": members[0]["monitor"],
        "best": members[0]["best"],
        "steps": sum(m["steps"] for m in members),
        "stopped_early": all(m["stopped_early"] for m in members),
        "valid": valid,
    }
    if test is not None:
        metrics["test"] = test
    metrics["seconds"] = {
        key: round(sum(m["seconds"][key] for m in members), 3)
        for key in ("prepare", "train", "train_steps", "total")
    }
    metrics["world_size"] = members[0]["world_size"]
    metrics["device"] = members[0]["device"]
    metrics["members"] = [
        {"seed": s, **{k: m[k] for k in ("valid", "test", "best", "steps") if k in m}}
        for s, m in zip(seeds, members, strict=True)
    ]
    return metrics


__all__ = ["ensemble_metrics", "member_configs"]

"""What the gates learned: statistics, the ``mmoe gates`` report, and gate health in training.

- :mod:`mmoe.gates.stats`: utilisation, entropy, divergence between gates, summed batch by
  batch (torch only; training's health check uses it).
- :mod:`mmoe.gates.analysis`, :mod:`mmoe.gates.plots`, :mod:`mmoe.gates.html`: the report's
  numbers, figures and page.
- :func:`report` (:mod:`mmoe.gates.reporting`): run directory + data → ``gates.json``, PNG figures
  and a self-contained ``report.html``.

Importing this package is light: the names below load their module on first use.

Example:
    >>> import mmoe.gates
    >>> mmoe.gates.report("runs/g1", "valid", by=["sex"], out="runs/g1/gates")  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "report": "mmoe.gates.reporting",
    "GateReport": "mmoe.gates.reporting",
    "gate_statistics": "mmoe.gates.reporting",
    "GateStats": "mmoe.gates.stats",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'mmoe.gates' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)

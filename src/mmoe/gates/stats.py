"""Statistics of gate weights, summed over batches of rows: utilisation, entropy, divergence.

A gated model returns ``gates (B, G, E)``: row ``g`` of each example is one gate's softmax over
``E`` experts (``model.gate_rows`` names the rows ``(level, gate)``, ``model.expert_names`` the
columns). :class:`GateStats` sums what the gate report and the training-time health check need,
one batch at a time, so any number of rows fits in memory. Definitions (all per gate ``g``):

- **utilisation** ``u[g, e]``: mean over rows of the weight gate ``g`` gives expert ``e``
  (the "mean gate weight"; a row of ``u`` sums to 1).
- **selectable**: expert ``e`` has a non-zero weight on some row. Gates of architectures with
  task-specific experts (CGC, PLE) hold exact zeros for experts they cannot select; a softmax
  over experts it can select is never exactly 0 in practice, so this tells the two apart.
- **entropy**: mean over rows of ``-Σ_e w_e ln w_e`` (nats); **normalised** by ``ln k`` with
  ``k`` the number of selectable experts: 0 = every row uses one expert, 1 = every row spreads
  its weight evenly.
- **top share** ``s[g, e]``: the share of rows on which ``e`` is gate ``g``'s largest weight.
- **divergence** ``D[g, h]``: mean over rows of the Jensen–Shannon divergence between the two
  gates' distributions on the same row, divided by ``ln 2`` (so in [0, 1]; 0 = the two gates
  mix the experts identically on every row, 1 = they never use the same expert).

Two warnings, with their thresholds:

- an expert is **dead** when every gate of its level that can select it gives it a mean weight
  below ``DEAD_SHARE`` of an even share (``DEAD_SHARE / k``);
- a gate is **polarised** when one expert takes at least ``POLARISED_WEIGHT`` of its mean
  weight (the YouTube failure: most experts near zero utilisation, Zhao et al., RecSys 2019).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

#: An expert whose mean weight is below this fraction of an even share (1/k) is dead for a gate.
DEAD_SHARE = 0.1
#: A gate whose largest mean weight on one expert is at least this is polarised.
POLARISED_WEIGHT = 0.9


@dataclass
class GateStats:
    """Running sums over the rows of gate tensors ``(B, G, E)`` (see the module docstring).

    Args:
        num_gates: ``G``.
        num_experts: ``E``.
        pairs: also sum the per-row divergence between every two gates (``G * G * E`` per row).
        top: also count the rows on which each expert carries each gate's largest weight.
        segments: for each named segmentation, its number of values ``V``; :meth:`update` then
            takes each row's value code and sums weights and entropies per value.
        keep_entropy: keep every row's entropy (``(N, G)`` floats) for a histogram.

    Example:
        >>> stats = GateStats(num_gates=2, num_experts=2, pairs=True, top=True)
        >>> stats.update(torch.tensor([[[1.0, 0.0], [0.5, 0.5]], [[1.0, 0.0], [0.0, 1.0]]]))
        >>> stats.utilisation().tolist()
        [[1.0, 0.0], [0.25, 0.75]]
        >>> [round(v, 3) for v in stats.normalized_entropy().tolist()]
        [0.0, 0.5]
        >>> round(float(stats.divergence()[0, 1]), 3)
        0.656
    """

    num_gates: int
    num_experts: int
    pairs: bool = False
    top: bool = False
    segments: dict[str, int] = field(default_factory=dict)
    keep_entropy: bool = False

    def __post_init__(self) -> None:
        g, e = self.num_gates, self.num_experts
        self.rows = 0
        self.weight_sum = torch.zeros(g, e, dtype=torch.float64)
        self.entropy_sum = torch.zeros(g, dtype=torch.float64)
        self.top_count = torch.zeros(g, e, dtype=torch.float64)
        self.peak = torch.zeros(g, e, dtype=torch.float64)  # largest weight seen
        self.divergence_sum = torch.zeros(g, g, dtype=torch.float64)
        self.segment_rows = {
            name: torch.zeros(v, dtype=torch.float64) for name, v in self.segments.items()
        }
        self.segment_weight = {
            name: torch.zeros(v, g, e, dtype=torch.float64) for name, v in self.segments.items()
        }
        self.segment_entropy = {
            name: torch.zeros(v, g, dtype=torch.float64) for name, v in self.segments.items()
        }
        self.row_entropy: list[Tensor] = []

    def update(self, gates: Tensor, codes: dict[str, Tensor] | None = None) -> None:
        """Add the rows of ``gates (B, G, E)``; ``codes[name]`` is each row's value ``(B,)``.

        Per-row work is done in the gates' dtype on their device; only the sums (accumulated
        in float64) move to the CPU.
        """
        assert gates.dim() == 3 and gates.shape[1:] == (self.num_gates, self.num_experts)
        w = gates.detach().float()
        entropy = -torch.special.xlogy(w, w).sum(-1)  # (B, G) nats
        self.rows += w.shape[0]
        self.weight_sum += w.sum(0, dtype=torch.float64).cpu()
        self.entropy_sum += entropy.sum(0, dtype=torch.float64).cpu()
        if w.shape[0]:
            self.peak = torch.maximum(self.peak, w.amax(0).cpu().double())
        if self.top:
            g, e = self.num_gates, self.num_experts
            cells = w.argmax(-1) + torch.arange(g, device=w.device) * e  # (B, G) gate-expert cell
            self.top_count += torch.bincount(cells.flatten(), minlength=g * e).view(g, e).cpu()
        if self.pairs:
            mid = (w[:, :, None] + w[:, None]) / 2  # (B, G, G, E)
            mid_entropy = -torch.special.xlogy(mid, mid).sum(-1)  # (B, G, G)
            js = mid_entropy - (entropy[:, :, None] + entropy[:, None]) / 2
            self.divergence_sum += js.clamp_min(0).sum(0, dtype=torch.float64).cpu()
        for name in self.segments:
            assert codes is not None and name in codes, f"no codes for segmentation {name!r}"
            index = codes[name].to(w.device, torch.long)
            ones = torch.ones(index.shape, dtype=torch.float64, device=w.device)
            rows = torch.zeros_like(self.segment_rows[name], device=w.device)
            self.segment_rows[name] += rows.index_add_(0, index, ones).cpu()
            weight = torch.zeros_like(self.segment_weight[name], device=w.device)
            self.segment_weight[name] += weight.index_add_(0, index, w.double()).cpu()
            ent = torch.zeros_like(self.segment_entropy[name], device=w.device)
            self.segment_entropy[name] += ent.index_add_(0, index, entropy.double()).cpu()
        if self.keep_entropy:
            self.row_entropy.append(entropy.cpu())

    # ---- summaries -----------------------------------------------------------------------------

    def utilisation(self) -> Tensor:
        """Mean weight of every expert under every gate ``(G, E)``."""
        return self.weight_sum / max(self.rows, 1)

    def selectable(self) -> Tensor:
        """Whether each gate ever gives each expert a non-zero weight ``(G, E)`` (bool)."""
        return self.peak > 0

    def num_selectable(self) -> Tensor:
        """Number of experts each gate can select ``(G,)`` (at least 1)."""
        return self.selectable().sum(-1).clamp_min(1)

    def entropy(self) -> Tensor:
        """Mean per-row entropy of each gate ``(G,)``, in nats."""
        return self.entropy_sum / max(self.rows, 1)

    def normalized_entropy(self) -> Tensor:
        """Mean entropy over ``ln k`` ``(G,)``: 0 = one expert per row, 1 = even weights.

        A gate that can select only one expert scores 0.
        """
        k = self.num_selectable().to(torch.float64)
        return torch.where(k > 1, self.entropy() / k.log().clamp_min(1e-12), 0.0)

    def top_share(self) -> Tensor:
        """Share of rows on which each expert carries each gate's largest weight ``(G, E)``."""
        assert self.top, "GateStats(top=True) counts top experts"
        return self.top_count / max(self.rows, 1)

    def divergence(self) -> Tensor:
        """Mean per-row Jensen–Shannon divergence between gates ``(G, G)``, in [0, 1]."""
        assert self.pairs, "GateStats(pairs=True) sums divergences"
        return self.divergence_sum / max(self.rows, 1) / math.log(2)

    def entropies(self) -> Tensor:
        """Every row's entropy ``(N, G)`` (nats); needs ``keep_entropy``."""
        assert self.keep_entropy, "GateStats(keep_entropy=True) keeps per-row entropies"
        if not self.row_entropy:
            return torch.zeros(0, self.num_gates)
        return torch.cat(self.row_entropy)


@dataclass(frozen=True)
class GateProblem:
    """A dead expert or a polarised gate. ``key`` identifies it across evaluations."""

    key: tuple[str, int, str]  # ("dead" | "polarised", level, expert or gate name)
    message: str


def gate_label(level: int, name: str, levels: int) -> str:
    """How a gate is named in reports: its name, with its level when the model has several.

    Example:
        >>> gate_label(0, "income", 1), gate_label(1, "shared", 2)
        ('income', 'level1/shared')
    """
    return name if levels <= 1 else f"level{level}/{name}"


def gate_labels(gate_rows: Sequence[tuple[int, str]]) -> list[str]:
    """The report name of every gate row, in order (see :func:`gate_label`)."""
    levels = len({level for level, _ in gate_rows})
    return [gate_label(level, name, levels) for level, name in gate_rows]


def find_problems(
    stats: GateStats, gate_rows: Sequence[tuple[int, str]], expert_names: Sequence[str]
) -> list[GateProblem]:
    """Dead experts and polarised gates (thresholds ``DEAD_SHARE``, ``POLARISED_WEIGHT``).

    Example:
        >>> stats = GateStats(num_gates=2, num_experts=3)
        >>> stats.update(torch.tensor([[[0.95, 0.04, 0.01], [0.5, 0.49, 0.01]]]))
        >>> [p.message for p in find_problems(stats, [(0, "a"), (0, "b")], ["e0", "e1", "e2"])]
        ... # doctest: +NORMALIZE_WHITESPACE
        ["expert 'e2' is dead: mean gate weight 0.0100 (a) and 0.0100 (b), below 0.1 of an even
          share for every gate that can select it", "gate 'a' is polarised: expert 'e0' takes
          0.950 of its weight (threshold 0.9); try model.gate_dropout: 0.1"]
    """
    u, selectable, k = stats.utilisation(), stats.selectable(), stats.num_selectable()
    labels = gate_labels(gate_rows)
    levels = sorted({lv for lv, _ in gate_rows})
    problems = []
    for level in levels:
        rows = [i for i, (lv, _) in enumerate(gate_rows) if lv == level]
        for e, expert in enumerate(expert_names):
            users = [i for i in rows if selectable[i, e]]
            if not users or any(u[i, e] >= DEAD_SHARE / k[i] for i in users):
                continue
            shares = " and ".join(f"{float(u[i, e]):.4f} ({labels[i]})" for i in users)
            where = f" of level {level}" if len(levels) > 1 else ""
            problems.append(
                GateProblem(
                    ("dead", level, expert),
                    f"expert {expert!r}{where} is dead: mean gate weight {shares}, below "
                    f"{DEAD_SHARE:g} of an even share for every gate that can select it",
                )
            )
    for i, (level, name) in enumerate(gate_rows):
        if k[i] < 2:
            continue
        e = int(u[i].argmax())
        if u[i, e] >= POLARISED_WEIGHT:
            problems.append(
                GateProblem(
                    ("polarised", level, name),
                    f"gate {labels[i]!r} is polarised: expert {expert_names[e]!r} takes "
                    f"{float(u[i, e]):.3f} of its weight (threshold {POLARISED_WEIGHT:g}); "
                    "try model.gate_dropout: 0.1",
                )
            )
    return problems


def gate_health(stats: GateStats, gate_rows: Sequence[tuple[int, str]]) -> dict[str, dict]:
    """Per gate: normalised entropy and the smallest mean weight of a selectable expert.

    What training records in ``metrics.jsonl`` at every evaluation (key ``gates``).

    Example:
        >>> stats = GateStats(num_gates=1, num_experts=2)
        >>> stats.update(torch.tensor([[[0.75, 0.25]], [[0.25, 0.75]]]))
        >>> gate_health(stats, [(0, "click")])
        {'click': {'entropy': 0.8113, 'min_utilisation': 0.5}}
    """
    u = stats.utilisation().masked_fill(~stats.selectable(), math.inf)
    entropy = stats.normalized_entropy()
    return {
        label: {
            "entropy": round(float(entropy[i]), 4),
            "min_utilisation": round(float(u[i].min()), 4) if math.isfinite(u[i].min()) else 0.0,
        }
        for i, label in enumerate(gate_labels(gate_rows))
    }


__all__ = [
    "DEAD_SHARE",
    "POLARISED_WEIGHT",
    "GateProblem",
    "GateStats",
    "find_problems",
    "gate_health",
    "gate_label",
    "gate_labels",
]

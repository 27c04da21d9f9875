"""The synthetic two-task regression data of Ma et al., KDD 2018, §3.2, with controlled relatedness.

Construction (the paper's): u1, u2 are orthogonal unit vectors in R^d;
``w1 = c·u1``, ``w2 = c·(p·u1 + sqrt(1-p²)·u2)`` so ``cos(w1, w2) = p``; ``x ~ N(0, I_d)``;

    y_k = w_kᵀx + Σ_{i=1..m} sin(α_i w_kᵀx + β_i) + ε_k,    ε_k ~ N(0, noise_std²)

with α, β drawn once and shared by both tasks. ``p`` (called the task correlation) sets how
related the tasks are; the label correlation it produces is much lower than ``p`` because of the
sine terms. The paper leaves c, m, the law of α and β and the sample counts open; the defaults
here are this project's choices (see ``SyntheticSource`` and the README).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa


@dataclass(frozen=True)
class SyntheticTasks:
    """The drawn constants of one synthetic problem; ``sample`` draws rows from it."""

    w1: np.ndarray  # (d,)
    w2: np.ndarray  # (d,)
    alpha: np.ndarray  # (m,)
    beta: np.ndarray  # (m,)
    noise_std: float

    @classmethod
    def draw(
        cls,
        correlation: float,
        rng: np.random.Generator,
        num_features: int = 100,
        scale: float = 1.0,
        num_sines: int = 10,
        alpha_std: float = 2.0,
        noise_std: float = 0.1,
    ) -> SyntheticTasks:
        """Draw u1 ⟂ u2 (Gram-Schmidt via QR), the weight vectors and the sine constants."""
        if not -1.0 <= correlation <= 1.0:
            raise ValueError(f"correlation must be in [-1, 1], got {correlation}")
        q, _ = np.linalg.qr(rng.standard_normal((num_features, 2)))
        u1, u2 = q[:, 0], q[:, 1]
        w1 = scale * u1
        w2 = scale * (correlation * u1 + np.sqrt(1.0 - correlation**2) * u2)
        alpha = rng.normal(0.0, alpha_std, num_sines)
        beta = rng.normal(0.0, 1.0, num_sines)
        return cls(w1, w2, alpha, beta, noise_std)

    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``x`` (n, d) float32 and labels ``y`` (n, 2) float32."""
        x = rng.standard_normal((n, self.w1.shape[0]))
        ys = []
        for w in (self.w1, self.w2):
            z = x @ w  # (n,)
            waves = np.sin(np.outer(z, self.alpha) + self.beta).sum(axis=1)  # (n,)
            ys.append(z + waves + rng.normal(0.0, self.noise_std, n))
        return x.astype(np.float32), np.stack(ys, axis=1).astype(np.float32)


def synthetic_table(x: np.ndarray, y: np.ndarray) -> pa.Table:
    """Columns ``x0 … x{d-1}`` and labels ``y1``, ``y2``."""
    cols = {f"x{i}": x[:, i] for i in range(x.shape[1])}
    cols.update(y1=y[:, 0], y2=y[:, 1])
    return pa.table(cols)


def make_synthetic(
    correlation: float,
    sizes: tuple[int, ...],
    seed: int = 0,
    **constants: float,
) -> list[pa.Table]:
    """Tables of the given sizes (e.g. train, valid, test), all drawn from one problem.

    Example:
        >>> train, test = make_synthetic(0.5, (100, 50), seed=1)
        >>> train.num_rows, test.num_rows, train.column_names[-2:]
        (100, 50, ['y1', 'y2'])
    """
    rng = np.random.default_rng(seed)
    tasks = SyntheticTasks.draw(correlation, rng, **constants)
    return [synthetic_table(*tasks.sample(n, rng)) for n in sizes]

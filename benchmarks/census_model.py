"""The census configuration the speed benchmarks measure, shared by the scripts beside it.

Census group 1 features and tasks with embeddings of width 4, MMoE with 8 experts x [16] and
towers [8] — not the tuned sizes ``configs/census/group1-mmoe.yaml`` ships.
"""

from __future__ import annotations

from pathlib import Path

from mmoe.config import RunConfig, load_config

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs/census/group1-mmoe.yaml"
DEFAULT_DATA_DIR = ROOT.parent / "shared/data/census-income"
BENCHMARK_MODEL = [
    "features.embedding_dim=4",
    "features.numeric_encoding=standardize",  # the plain inputs, whatever the config ships
    "model.num_experts=8",
    "model.expert_hidden=[16]",
    "model.tower_hidden=[8]",
    "model.cross_layers=0",  # none of the shipped config's options: the benchmark model stays put
    "model.dropout=0.0",
]


def benchmark_config(data_dir: str | Path) -> RunConfig:
    """The shipped group-1 config at the benchmark sizes, on the census files in ``data_dir``."""
    return load_config(CONFIG, [f"data.data_dir={data_dir}", *BENCHMARK_MODEL])

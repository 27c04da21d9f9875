"""Data larger than memory: streaming fit, lookups built once, splits, weights, stream resume."""

from __future__ import annotations

import itertools
import json
import signal
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import yaml
from sklearn.metrics import log_loss, mean_squared_error, roc_auc_score

import mmoe
from mmoe.config import load_config
from mmoe.data.census import CENSUS_NUMERIC
from mmoe.data.lookup import VocabularyLookup
from mmoe.data.preprocessor import Preprocessor
from mmoe.data.ranking import write_ranking_log
from mmoe.data.splits import RowSplitter, split_table
from mmoe.data.streaming import ParquetRows, StreamingSource, StreamPart
from mmoe.specs import FeaturesConfig, TaskSpec
from mmoe.training.losses import MultiTaskLoss
from mmoe.training.metrics import task_metrics
from tests.test_resume import (
    assert_same_weights,
    finish_with_resume,
    start_training,
    wait_for_checkpoint,
)

CATEGORICAL = ["class of worker", "education", "hispanic origin", "detailed industry recode",
               "state of previous residence", "major occupation code"]  # fmt: skip
INCOME = TaskSpec(name="income", column="income", type="binary", positive=["50000+."])


def census_preprocessor(**features) -> Preprocessor:
    spec = FeaturesConfig(categorical=CATEGORICAL, numeric=list(CENSUS_NUMERIC), **features)
    return Preprocessor(spec, [INCOME])


@pytest.fixture(scope="module")
def ranking_log(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("log") / "ranking"
    write_ranking_log(out, rows=4_000, days=4, num_users=500, num_items=200,
                      chunk_rows=1_000, row_group_rows=250, progress=False)  # fmt: skip
    return out


# ---- partial_fit ---------------------------------------------------------------------------------


def test_partial_fit_over_any_batching_equals_fit(census_table):
    whole = census_preprocessor(min_frequency=3).fit(census_table)
    rng = np.random.default_rng(0)
    cuts = np.sort(rng.choice(np.arange(1, census_table.num_rows), 9, replace=False))
    bounds = [0, *cuts.tolist(), census_table.num_rows]
    batched = census_preprocessor(min_frequency=3)
    for lo, hi in itertools.pairwise(bounds):
        batched.partial_fit(census_table.slice(lo, hi - lo).combine_chunks().to_batches()[0])
    assert batched.to_dict() == whole.to_dict()  # exact sums: bit-identical statistics
    half = census_table.num_rows // 2
    merged = census_preprocessor(min_frequency=3).partial_fit(census_table.slice(half))
    merged.merge(census_preprocessor(min_frequency=3).partial_fit(census_table.slice(0, half)))
    assert merged.to_dict() == whole.to_dict()
    ages = census_table.column("age").to_numpy().astype(float)
    assert whole.numeric_stats_["age"]["mean"] == pytest.approx(ages.mean(), rel=1e-12)
    assert whole.numeric_stats_["age"]["std"] == pytest.approx(ages.std(), rel=1e-12)


def test_census_preprocessor_json_is_identical_from_a_table_and_a_stream(census_table, tmp_path):
    pq.write_table(census_table, tmp_path / "census.parquet", row_group_size=700)
    table_fit = census_preprocessor().fit(census_table)
    rows = ParquetRows(str(tmp_path / "census.parquet"), [*CATEGORICAL, *CENSUS_NUMERIC, "income"])
    assert len(rows.units) == 5
    stream_fit = census_preprocessor().fit_batches(rows.tables())
    table_fit.save(tmp_path / "a.json")
    stream_fit.save(tmp_path / "b.json")
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()


def test_max_categories_caps_the_vocabulary(census_table):
    pre = Preprocessor(FeaturesConfig(categorical=[{"name": "education", "max_categories": 3}]),
                       [INCOME]).fit(census_table)  # fmt: skip
    counts = census_table.column("education").value_counts().to_pylist()
    top = [c["values"] for c in sorted(counts, key=lambda c: (-c["counts"], c["values"]))[:3]]
    assert pre.vocabularies_["education"] == top
    codes = pre.transform(census_table).categorical[:, 0].numpy()
    assert set(codes.tolist()) == {0, 1, 2, 3}


def test_small_batch_transform_does_not_rebuild_lookups(census_table, tmp_path):
    pre = census_preprocessor().fit(census_table)
    before = VocabularyLookup.builds
    first = pre.transform(census_table.slice(0, 64))
    assert VocabularyLookup.builds == before + len(CATEGORICAL)  # built once, on first use
    for start in range(64, 64 * 20, 64):
        pre.transform(census_table.slice(start, 64))
    assert VocabularyLookup.builds == before + len(CATEGORICAL)
    pre.save(tmp_path / "pre.json")
    loaded = Preprocessor.load(tmp_path / "pre.json")
    again = loaded.transform(census_table.slice(0, 64))
    loaded.transform(census_table.slice(64, 64))
    assert VocabularyLookup.builds == before + 2 * len(CATEGORICAL)  # once more after loading
    assert torch.equal(first.categorical, again.categorical)


@pytest.mark.parametrize("repeat", [1, 10])  # 5 rows: the small-batch dict; 50: the hash index
def test_lookup_paths_agree_on_ints_strings_and_dictionaries(repeat):
    from mmoe.data.lookup import SMALL

    lookup = VocabularyLookup(["30", "7", "12"])
    ints = pa.array([7, 12, 5, None, 30] * repeat)
    assert (len(ints) <= SMALL) == (repeat == 1)
    expected = [2, 3, 0, 0, 1] * repeat
    assert lookup(ints).tolist() == expected
    assert lookup(ints.cast(pa.string())).tolist() == expected
    assert lookup(ints.cast(pa.string()).dictionary_encode()).tolist() == expected
    assert lookup(pa.chunked_array([ints[:2], ints[2:]])).tolist() == expected
    words = VocabularyLookup(["b", "a"])
    text = pa.array(["a", " a", None, "b", "c"] * repeat)
    assert words(text).tolist() == [2, 0, 0, 1, 0] * repeat


@pytest.mark.parametrize("repeat", [1, 30])  # a few rows (Python) and many (Arrow)
def test_unseen_categories_same_with_and_without_codes(repeat):
    from mmoe.data.checks import unseen_categories

    vocab = {"city": ["Paris", "Lyon"], "n": ["1", "2"]}
    table = pa.table({
        "city": ["Paris", "paris", "", None, "Nice", "Nice", "Lyon"] * repeat,
        "n": [1, 2, 3, None, 3, 4, 1] * repeat,
    })  # fmt: skip
    codes = {name: VocabularyLookup(tokens)(table.column(name)) for name, tokens in vocab.items()}
    plain, fast = unseen_categories(table, vocab), unseen_categories(table, vocab, codes)
    assert plain == fast
    assert fast["city"] == {"rows": 6 * repeat, "unseen": 3 * repeat,
                            "top": [("Nice", 2 * repeat), ("paris", repeat)]}  # fmt: skip
    assert fast["n"]["unseen"] == 3 * repeat and fast["n"]["top"][0] == ("3", 2 * repeat)


# ---- splits --------------------------------------------------------------------------------------


def test_hash_and_time_splits_are_deterministic_and_disjoint(ranking_log):
    table = pa.concat_tables(ParquetRows(str(ranking_log), ["user_id", "day"]).tables())
    by_user = RowSplitter("hash", "user_id", valid_fraction=0.2, test_fraction=0.1, seed=3)
    parts = split_table(table, by_user)
    users = {k: set(v.column("user_id").to_pylist()) for k, v in parts.items()}
    assert not users["train"] & users["valid"] and not users["valid"] & users["test"]
    assert not users["train"] & users["test"]  # a user is in one split only
    assert sum(p.num_rows for p in parts.values()) == table.num_rows
    assert 0.1 < parts["valid"].num_rows / table.num_rows < 0.3
    again = split_table(table, by_user)
    assert all(again[k].equals(parts[k]) for k in parts)
    # The hash reads canonical text: the same ids as strings split the same way.
    as_text = table.set_column(0, "user_id", table.column("user_id").cast(pa.string()))
    assert np.array_equal(by_user.assign(as_text), by_user.assign(table))

    by_day = RowSplitter("time", "day", valid_from=2, test_from=3)
    parts = split_table(table, by_day)
    days = {k: set(v.column("day").to_pylist()) for k, v in parts.items()}
    assert days == {"train": {0, 1}, "valid": {2}, "test": {3}}
    # A stream sees the same split, row group by row group.
    stream = StreamPart(ParquetRows(str(ranking_log), ["user_id", "day"]), "valid", by_user)
    streamed = pa.concat_tables(stream.tables())
    assert streamed.equals(split_table(table, by_user)["valid"])


def test_table_config_with_time_split_and_test_fraction(tmp_path, ranking_log):
    table = pa.concat_tables(ParquetRows(str(ranking_log), ["user_id", "click", "day"]).tables())
    pq.write_table(table, tmp_path / "log.parquet")
    from mmoe.data.sources import load_splits

    def splits(**data):
        raw = {"data": {"source": "table", "train": str(tmp_path / "log.parquet"), **data},
               "features": {"categorical": ["user_id"]},
               "tasks": [{"name": "click", "column": "click", "type": "binary"}]}  # fmt: skip
        return load_splits(mmoe.config.parse_config(raw).data)

    timed = splits(split="time", split_column="day", valid_from=3)
    assert timed.test is None and set(timed.valid.column("day").to_pylist()) == {3}
    held = splits(valid_fraction=0.2, test_fraction=0.1)
    assert (held.train.num_rows, held.valid.num_rows, held.test.num_rows) == (2800, 800, 400)


def test_relative_data_paths_resolve_against_the_config_folder(tmp_path, monkeypatch):
    folder = tmp_path / "project" / "configs"
    folder.mkdir(parents=True)
    raw = {"data": {"source": "table", "train": "../data/train.csv"},
           "features": {"numeric": ["x"]},
           "tasks": [{"name": "y", "column": "y", "type": "binary"}]}  # fmt: skip
    (folder / "run.yaml").write_text(yaml.safe_dump(raw))
    monkeypatch.chdir(tmp_path)
    config = load_config(folder / "run.yaml", ["data.test=test.csv"])
    assert config.data.train == tmp_path / "project" / "data" / "train.csv"
    assert config.data.test == tmp_path / "test.csv"  # --set values: the shell's folder


# ---- sample weights ------------------------------------------------------------------------------


def test_weights_change_the_loss_as_defined():
    tasks = [TaskSpec(name="a", column="a", type="binary"),
             TaskSpec(name="b", column="b", type="regression")]  # fmt: skip
    loss = MultiTaskLoss(tasks)
    g = torch.Generator().manual_seed(0)
    logits, labels = torch.randn(8, 2, generator=g), (torch.rand(8, 2, generator=g) > 0.5).float()
    mask = torch.rand(8, 2, generator=g) > 0.2
    w = torch.rand(8, generator=g) * 3
    _, per_task = loss(logits, labels, mask, weights=w)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits[:, 0], labels[:, 0],
                                                               reduction="none")  # fmt: skip
    m = mask[:, 0].float() * w
    assert per_task[0].item() == pytest.approx((bce * m).sum().item() / m.sum().item(), rel=1e-6)
    m = mask[:, 1].float() * w
    sq = (logits[:, 1] - labels[:, 1]) ** 2
    assert per_task[1].item() == pytest.approx((sq * m).sum().item() / m.sum().item(), rel=1e-6)
    _, ones = loss(logits, labels, mask, weights=torch.ones(8))
    torch.testing.assert_close(ones, loss(logits, labels, mask)[1])


def test_weighted_metrics_match_scikit_learn():
    rng = np.random.default_rng(0)
    n = 500
    labels = np.column_stack([rng.random(n) < 0.3, rng.normal(size=n)]).astype(np.float32)
    logits = np.column_stack([labels[:, 0] + rng.normal(size=n), labels[:, 1] + rng.normal(size=n)])
    logits[:50, 0] = 0.25  # ties
    mask = rng.random((n, 2)) > 0.1
    w = rng.choice([1.0, 2.0, 5.0], n)
    tasks = [TaskSpec(name="a", column="a", type="binary"),
             TaskSpec(name="b", column="b", type="regression")]  # fmt: skip
    got = task_metrics(logits, labels, mask, tasks, weights=w)
    k = mask[:, 0]
    y, p = labels[k, 0], 1 / (1 + np.exp(-logits[k, 0]))
    assert got["a"]["auc"] == pytest.approx(roc_auc_score(y, logits[k, 0], sample_weight=w[k]))
    assert got["a"]["logloss"] == pytest.approx(log_loss(y, p, sample_weight=w[k]), rel=1e-6)
    k = mask[:, 1]
    mse = mean_squared_error(labels[k, 1], logits[k, 1], sample_weight=w[k])
    assert got["b"]["mse"] == pytest.approx(mse, rel=1e-6)
    unweighted = task_metrics(logits, labels, mask, tasks)
    assert got["a"]["auc"] != unweighted["a"]["auc"]
    assert task_metrics(logits, labels, mask, tasks, weights=np.ones(n))["a"] == pytest.approx(
        unweighted["a"]
    )


# ---- the streaming source ------------------------------------------------------------------------


def stream_config(log: Path, **training) -> dict:
    return {
        "data": {"source": "parquet_dataset", "train": str(log), "split": "time",
                 "split_column": "day", "valid_from": 3, "weight_column": "weight",
                 "shuffle_buffer_rows": 700},
        "features": {"categorical": ["user_id", "item_id", "device"],
                     "numeric": ["position", {"name": "item_price", "transform": "log1p"}]},
        "tasks": [{"name": "click", "column": "click", "type": "binary"},
                  {"name": "conversion", "column": "conversion", "type": "binary"}],
        "model": {"name": "mmoe", "num_experts": 2, "expert_hidden": [8], "tower_hidden": [4],
                  "dropout": 0.1},
        "training": {"epochs": 3, "batch_size": 64, "learning_rate": 0.01,
                     "eval_every_steps": 20, **training},
    }  # fmt: skip


def test_streaming_epochs_cover_each_row_once_and_ranks_read_disjoint_row_groups(ranking_log):
    rows = ParquetRows(str(ranking_log), ["user_id", "click", "position", "timestamp"])
    part = StreamPart(rows, "train")
    features = FeaturesConfig(categorical=["user_id"], numeric=["timestamp"])
    pre = Preprocessor(features, [TaskSpec(name="c", column="click", type="binary")])
    pre.fit_batches(part.tables())
    whole = StreamingSource(part, pre, batch_size=64, seed=1, shuffle_buffer_rows=700)
    seen = torch.cat([p.batch.numeric[:, 0] for p in whole.epoch(1)])
    assert len(seen) == 4_000 and sum(1 for _ in whole.epoch(1)) == whole.steps_per_epoch
    again = torch.cat([p.batch.numeric[:, 0] for p in whole.epoch(1, start_step=23)])
    assert torch.equal(again, seen[23 * 64 :])  # restart mid-window: the same rows
    assert not torch.equal(seen, torch.cat([p.batch.numeric[:, 0] for p in whole.epoch(2)]))
    ranks = [StreamingSource(part, pre, batch_size=64, seed=1, rank=r, world_size=2,
                             shuffle_buffer_rows=700) for r in range(2)]  # fmt: skip
    units = [set(r.units(1)) for r in ranks]
    assert not units[0] & units[1] and units[0] | units[1] == set(range(len(rows.units)))
    batches = [list(r.epoch(1)) for r in ranks]
    assert len(batches[0]) == len(batches[1]) == ranks[0].steps_per_epoch > 0
    assert all(len(p.batch) == 32 for b in batches for p in b)


def test_streaming_training_with_weights_runs_and_reports(tmp_path, ranking_log):
    run = mmoe.train(stream_config(ranking_log), out_dir=tmp_path / "run", progress=False)
    assert run.metrics["steps"] == 3 * 47  # 3000 training rows (days 0-2) in batches of 64
    assert run.metrics["valid"]["click"]["rows"] == 1_000
    conversion = run.metrics["valid"]["conversion"]["rows"]
    assert 0 < conversion < 1_000  # conversion is missing on rows without a click
    assert json.loads((tmp_path / "run/preprocessor.json").read_text())["weight_column"] == "weight"
    from mmoe.training.inputs import evaluate_stream_split  # what `mmoe evaluate RUN valid` runs

    again = evaluate_stream_split(mmoe.load(tmp_path / "run"), "valid")
    assert again.keys() == run.metrics["valid"].keys()
    for task, metrics in again.items():
        assert metrics == pytest.approx(run.metrics["valid"][task])
    # Provenance of a stream: every Parquet file with its size and row count; the environment
    # is read when training starts and the end time is added.
    prov = json.loads((tmp_path / "run/provenance.json").read_text())
    files = prov["data"]["files"]
    assert sorted(Path(f["path"]).name for f in files) == sorted(
        p.name for p in ranking_log.rglob("*.parquet")
    )
    assert sum(f["rows"] for f in files) == 4_000 and all(f["bytes"] > 0 for f in files)
    env = prov["environment"]
    assert env["time_utc"] <= env["finished_utc"]


def test_streaming_sigkill_then_resume_is_bit_identical(tmp_path, ranking_log):
    config = stream_config(ranking_log, checkpoint_every_steps=1)
    path = tmp_path / "stream.yaml"
    path.write_text(yaml.safe_dump(config))
    whole = tmp_path / "whole"
    mmoe.train(path, out_dir=whole, progress=False)
    out = tmp_path / "run"
    proc = start_training(path, out)
    wait_for_checkpoint(proc, out, 60)  # past the first shuffling window (700 rows ≈ 11 steps)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finish_with_resume(path, out)
    assert_same_weights(out, whole)


# ---- the generator -------------------------------------------------------------------------------


def test_synth_ranking_is_seeded_and_conversion_exists_only_on_clicks(tmp_path, ranking_log):
    again = tmp_path / "again"
    write_ranking_log(again, rows=4_000, days=4, num_users=500, num_items=200,
                      chunk_rows=1_000, row_group_rows=250, progress=False)  # fmt: skip
    a = pa.concat_tables(ParquetRows(str(ranking_log), ["user_id", "click", "conversion"]).tables())
    b = pa.concat_tables(ParquetRows(str(again), ["user_id", "click", "conversion"]).tables())
    assert a.equals(b)
    click = a.column("click").to_numpy()
    has_conversion = a.column("conversion").is_valid().to_numpy(zero_copy_only=False)
    assert np.array_equal(has_conversion, click == 1)
    assert 0.1 < click.mean() < 0.6

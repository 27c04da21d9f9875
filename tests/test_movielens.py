"""MovieLens 100K: the reader's join, the time split, the shipped configs, on a small slice."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pyarrow.compute as pc
import pytest

import mmoe
from mmoe.config import load_config
from mmoe.data.movielens import GENRE_COLUMNS, load_movielens, read_movielens, split_by_time
from mmoe.errors import DataError
from mmoe.experiments import movielens as study
from tests.conftest import MOVIELENS_DIR, ROOT, require

SLICE_ROWS = 3000


@pytest.fixture(scope="module")
def small_movielens_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first SLICE_ROWS ratings of u.data with the full (small) user and item files."""
    source = require(MOVIELENS_DIR)
    out = tmp_path_factory.mktemp("ml-100k")
    with open(source / "u.data") as f:
        (out / "u.data").write_text("".join(next(f) for _ in range(SLICE_ROWS)))
    for name in ("u.user", "u.item"):
        shutil.copy(source / name, out / name)
    return out


def test_ratings_are_joined_with_their_user_and_item(small_movielens_dir: Path) -> None:
    table = read_movielens(small_movielens_dir)
    assert table.num_rows == SLICE_ROWS
    first = table.slice(0, 1).to_pylist()[0]  # u.data's first line: 196 242 3 881250949
    assert {k: first[k] for k in ("user_id", "item_id", "rating", "timestamp")} == {
        "user_id": 196, "item_id": 242, "rating": 3.0, "timestamp": 881250949,
    }  # fmt: skip
    # u.user line 196: 196|49|M|writer|55105; u.item line 242: Kolya (1996), 24-Jan-1997, Comedy.
    assert (first["age"], first["gender"], first["occupation"]) == (49, "M", "writer")
    assert (first["zip_code"], first["zip_region"]) == ("55105", "5")
    assert (first["title"], first["release_year"]) == ("Kolya (1996)", 1997.0)
    assert [g for g in GENRE_COLUMNS if first[g]] == ["genre_comedy"]


def test_full_files_split_by_time_into_the_documented_sizes() -> None:
    config = load_config(ROOT / "configs/movielens/mmoe.yaml")
    train, valid, test = load_movielens(
        require(MOVIELENS_DIR), config.data.valid_from, config.data.test_from
    )
    assert (train.num_rows, valid.num_rows, test.num_rows) == (80_253, 10_388, 9_359)
    valid_at = dt.datetime(1998, 3, 8, tzinfo=dt.UTC).timestamp()
    test_at = dt.datetime(1998, 4, 1, tzinfo=dt.UTC).timestamp()
    assert pc.max(train["timestamp"]).as_py() < valid_at <= pc.min(valid["timestamp"]).as_py()
    assert pc.max(valid["timestamp"]).as_py() < test_at <= pc.min(test["timestamp"]).as_py()
    # The item with no release date keeps a missing year (the preprocessor imputes it).
    assert pc.sum(pc.is_null(train["release_year"])).as_py() > 0


def test_a_split_period_without_ratings_is_a_one_line_error(small_movielens_dir: Path) -> None:
    table = read_movielens(small_movielens_dir)
    with pytest.raises(DataError, match="the test period has no ratings .* move data"):
        split_by_time(table, dt.datetime(1998, 3, 8), dt.datetime(2001, 1, 1))
    with pytest.raises(DataError, match="must come before"):
        split_by_time(table, dt.datetime(1998, 4, 1), dt.datetime(1998, 3, 8))


def test_a_directory_without_the_files_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="u.data, u.user, u.item not found .* ml-100k"):
        read_movielens(tmp_path)
    config = load_config(ROOT / "configs/movielens/mmoe.yaml")
    with pytest.raises(DataError, match="data.data_dir=DIR"):
        mmoe.train(config, progress=False)


@pytest.mark.parametrize("method", study.METHODS)
def test_every_shipped_config_trains_both_tasks(method: str, small_movielens_dir: Path) -> None:
    name = method.replace("_", "-")
    config = load_config(
        ROOT / f"configs/movielens/{name}.yaml",
        [f"data.data_dir={small_movielens_dir}", "training.epochs=3", "training.batch_size=128",
         "training.learning_rate=0.01", "training.num_threads=1"],
    )  # fmt: skip
    run = mmoe.train(config, progress=False)
    assert set(run.metrics["test"]) == {"rating", "like"}
    assert 0.0 < run.metrics["test"]["like"]["auc"] < 1.0
    # Predicting 0 scores an RMSE near 3.7 (ratings lie in 1-5); the mean rating about 1.1.
    assert run.metrics["test"]["rating"]["rmse"] < 1.5


def test_the_study_runs_single_task_models_one_task_each(small_movielens_dir: Path) -> None:
    jobs = study.plan_jobs(["single_task"], 1, ROOT / "configs/movielens", small_movielens_dir)
    assert [j.task for j in jobs] == ["rating", "like"]
    jobs = [j.__class__(**{**j.__dict__, "config": _one_epoch(j.config, small_movielens_dir)})
            for j in jobs]  # fmt: skip
    runs = [study.run_job(job) for job in jobs]
    assert [set(r["test"]) for r in runs] == [{"rating"}, {"like"}]
    row = study.build_table(runs)[0]
    assert row["runs"] == 1 and set(row["mean"]) == {"rating", "like"}
    assert "| Single-Task | 1 |" in study.format_table([row])


def _one_epoch(config: str, data_dir: Path) -> str:
    import yaml

    raw = yaml.safe_load(Path(config).read_text())
    raw["training"].update(epochs=1, batch_size=256, num_threads=1)
    path = data_dir / "single-task-1-epoch.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)

"""Data sources: the census reader and split, generic tables and their errors, the generator."""

from __future__ import annotations

import gzip

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from mmoe.data.census import CENSUS_COLUMNS, download_census, load_census, read_census_file
from mmoe.data.sources import holdout
from mmoe.data.synthetic import SyntheticTasks, make_synthetic
from mmoe.data.tables import read_table, write_table
from mmoe.errors import DataError
from tests.conftest import CENSUS_ROWS


def test_census_reader_names_strips_and_keeps_na(census_table):
    assert census_table.num_rows == CENSUS_ROWS
    assert census_table.column_names == [c for c in CENSUS_COLUMNS if c != "instance weight"]
    education = set(census_table.column("education").to_pylist())
    assert "High school graduate" in education  # leading space stripped
    assert census_table.column("age").type == pa.int64()
    hispanic = pc.value_counts(census_table.column("hispanic origin")).to_pylist()
    assert any(v["values"] == "NA" for v in hispanic)  # a real category, not missing
    assert census_table.column("migration code-change in msa").null_count > 0  # "?" → missing
    assert set(census_table.column("income").to_pylist()) == {"- 50000.", "50000+."}


def test_full_census_files_have_the_documented_shape(census_dir):
    train, valid, test = load_census(census_dir, split_seed=0)
    assert train.num_rows == 199_523
    assert valid.num_rows + test.num_rows == 99_762
    assert abs(valid.num_rows - test.num_rows) <= 1
    positives = pc.sum(pc.equal(train.column("income"), "50000+.")).as_py()
    assert positives == 12_382
    never = pc.sum(pc.equal(train.column("marital stat"), "Never married")).as_py()
    assert never == 86_485
    assert pc.sum(pc.equal(train.column("hispanic origin"), "NA")).as_py() == 874


def test_census_split_is_reproducible_and_seeded(small_census_dir):
    _, v1, t1 = load_census(small_census_dir, split_seed=3)
    _, v2, t2 = load_census(small_census_dir, split_seed=3)
    _, v3, _ = load_census(small_census_dir, split_seed=4)
    assert v1.equals(v2) and t1.equals(t2)
    assert not v1.equals(v3)
    assert v1.num_rows == t1.num_rows == CENSUS_ROWS // 2


def test_census_download_verifies_checksums(small_census_dir, census_dir, tmp_path):
    # The real files, served from a file:// URL: fetched, verified, kept.
    download_census(tmp_path / "ok", base_url=census_dir.as_uri() + "/")
    assert (tmp_path / "ok" / "census-income.data.gz").is_file()
    # A file with the wrong content is rejected and nothing is left behind.
    fake = tmp_path / "fake"
    fake.mkdir()
    for stem in ("census-income.data", "census-income.test"):
        with gzip.open(fake / f"{stem}.gz", "wt") as f:
            f.write((small_census_dir / stem).read_text())
    with pytest.raises(DataError, match="wrong sha256"):
        download_census(tmp_path / "bad", base_url=fake.as_uri() + "/")
    assert not list((tmp_path / "bad").iterdir())


def test_missing_census_dir_names_the_fix(tmp_path):
    with pytest.raises(DataError, match=r"census-income.data\[.gz\] not found in .*data.data_dir"):
        load_census(tmp_path, split_seed=0)


def test_truncated_census_file_is_one_line_error(small_census_dir, tmp_path):
    text = (small_census_dir / "census-income.data").read_text()
    (tmp_path / "census-income.data").write_text(text[: len(text) // 2 + 37])
    with pytest.raises(DataError, match="not a readable UCI census file.*Expected 42 columns"):
        read_census_file(tmp_path / "census-income.data")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "the file is empty"),
        ("a,b,c\n", "the table has no rows"),
        ("a,b,c\n1,2,3\n4,5\n", "cannot be read: CSV parse error: Expected 3 columns, got 2"),
    ],
)
def test_bad_csv_files_are_one_line_errors(tmp_path, content, message):
    path = tmp_path / "t.csv"
    path.write_text(content)
    with pytest.raises(DataError, match=message) as info:
        read_table(path)
    assert "\n" not in str(info.value)


def test_table_formats_round_trip_and_na_stays_a_string(tmp_path):
    table = pa.table({"code": ["NA", "x", "NA"], "v": [1.5, None, 3.0]})
    for name in ("t.csv", "t.parquet"):
        write_table(table, tmp_path / name)
        back = read_table(tmp_path / name)
        assert back.column("code").to_pylist() == ["NA", "x", "NA"]
        assert back.column("v").to_pylist() == [1.5, None, 3.0]
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary files left
    (tmp_path / "t.json").write_text("{}")
    with pytest.raises(DataError, match="unknown table format"):
        read_table(tmp_path / "t.json")
    with pytest.raises(DataError, match="data file not found"):
        read_table(tmp_path / "absent.csv")


def test_holdout_is_disjoint_and_seeded():
    table = pa.table({"i": np.arange(100)})
    train, valid, _ = holdout(table, 0.2, seed=1)
    assert valid.num_rows == 20 and train.num_rows == 80
    assert not set(train.column("i").to_pylist()) & set(valid.column("i").to_pylist())
    assert holdout(table, 0.2, seed=1)[1].equals(valid)


@pytest.mark.parametrize("p", [-0.5, 0.0, 0.5, 0.9, 1.0])
def test_generator_weight_vectors_have_the_asked_cosine(p):
    tasks = SyntheticTasks.draw(p, np.random.default_rng(0), num_features=50, scale=2.0)
    u1 = tasks.w1 / np.linalg.norm(tasks.w1)
    assert np.linalg.norm(tasks.w1) == pytest.approx(2.0)
    assert np.linalg.norm(tasks.w2) == pytest.approx(2.0)
    assert u1 @ tasks.w2 / 2.0 == pytest.approx(p)
    # w2's part orthogonal to w1 has the norm sqrt(1 - p²)·c.
    rest = tasks.w2 - (u1 @ tasks.w2) * u1
    assert np.linalg.norm(rest) == pytest.approx(2.0 * np.sqrt(1 - p * p), abs=1e-9)


def test_generator_labels_follow_the_formula():
    rng = np.random.default_rng(0)
    tasks = SyntheticTasks.draw(0.7, rng, num_features=10, num_sines=3, noise_std=0.0)
    x, y = tasks.sample(200, rng)
    for k, w in enumerate((tasks.w1, tasks.w2)):
        z = x.astype(np.float64) @ w
        expected = z + sum(np.sin(a * z + b) for a, b in zip(tasks.alpha, tasks.beta, strict=True))
        assert np.allclose(y[:, k], expected, atol=1e-5)


def test_make_synthetic_is_seeded():
    a = make_synthetic(0.5, (50, 20), seed=7)
    b = make_synthetic(0.5, (50, 20), seed=7)
    assert all(x.equals(y) for x, y in zip(a, b, strict=True))
    assert not make_synthetic(0.5, (50,), seed=8)[0].equals(a[0])

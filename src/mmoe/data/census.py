"""UCI Census-Income (KDD), the real dataset of Ma et al., KDD 2018, §6.

The two UCI files have no header; this module supplies the 42 column names from UCI's
``census-income.names``, strips the space that precedes every field after the first, reads ``?``
as missing while keeping the real category spelled ``NA`` (column ``hispanic origin``), drops the
survey weight column (never a feature), and makes the paper's split: the training file trains,
the test file is split 1:1 at random into validation and test with a recorded seed.
"""

from __future__ import annotations

import hashlib
import shutil
import urllib.request
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mmoe.errors import DataError

CENSUS_COLUMNS: tuple[str, ...] = (
    "age", "class of worker", "detailed industry recode", "detailed occupation recode",
    "education", "wage per hour", "enroll in edu inst last wk", "marital stat",
    "major industry code", "major occupation code", "race", "hispanic origin", "sex",
    "member of a labor union", "reason for unemployment", "full or part time employment stat",
    "capital gains", "capital losses", "dividends from stocks", "tax filer stat",
    "region of previous residence", "state of previous residence",
    "detailed household and family stat", "detailed household summary in household",
    "instance weight", "migration code-change in msa", "migration code-change in reg",
    "migration code-move within reg", "live in this house 1 year ago",
    "migration prev res in sunbelt", "num persons worked for employer",
    "family members under 18", "country of birth father", "country of birth mother",
    "country of birth self", "citizenship", "own business or self employed",
    "fill inc questionnaire for veteran's admin", "veterans benefits", "weeks worked in year",
    "year", "income",
)  # fmt: skip

#: Columns holding quantities; every other column (coded ones included) is categorical.
CENSUS_NUMERIC: tuple[str, ...] = (
    "age", "wage per hour", "capital gains", "capital losses", "dividends from stocks",
    "num persons worked for employer", "weeks worked in year",
)  # fmt: skip

WEIGHT_COLUMN = "instance weight"

#: sha256 of the uncompressed UCI files.
CENSUS_SHA256 = {
    "census-income.data": "3676a81db7d3528f3f8b9f3c699d0f0aa28db45e6e994fa0b8ed38327539ee86",
    "census-income.test": "98402b1ab879573d0a7f38a699a40258080e25e33d3401e7bf9c96d3fa0fab8c",
}
UCI_URL = "https://archive.ics.uci.edu/ml/machine-learning-databases/census-income-mld/"


def find_census_file(data_dir: str | Path, stem: str) -> Path:
    """``data_dir/stem`` or ``data_dir/stem.gz``, whichever exists."""
    for name in (stem, stem + ".gz"):
        path = Path(data_dir) / name
        if path.is_file():
            return path
    raise DataError(
        f"{stem}[.gz] not found in {data_dir}; point data.data_dir at the directory holding the "
        f"UCI Census-Income files (or set data.download: true to fetch them from {UCI_URL})"
    )


def read_census_file(path: str | Path) -> pa.Table:
    """One UCI census file as a table with named columns, stripped strings and ``?`` as missing.

    The survey weight column is dropped.
    """
    from pyarrow import csv

    path = Path(path)
    try:
        table = csv.read_csv(
            path,
            read_options=csv.ReadOptions(column_names=list(CENSUS_COLUMNS)),
            # Only "?" means missing: "NA" is a real category of "hispanic origin".
            convert_options=csv.ConvertOptions(null_values=["?", " ?"], strings_can_be_null=True),
        )
    except (pa.ArrowInvalid, OSError, EOFError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{path}: not a readable UCI census file: {first}") from exc
    if table.num_rows == 0:
        raise DataError(f"{path}: the file has no rows")
    columns = []
    for name in table.column_names:
        col = table.column(name)
        columns.append(pc.utf8_trim_whitespace(col) if pa.types.is_string(col.type) else col)
    table = pa.table(columns, names=table.column_names)
    return table.drop_columns([WEIGHT_COLUMN])


def load_census(
    data_dir: str | Path, split_seed: int, download: bool = False
) -> tuple[pa.Table, pa.Table, pa.Table]:
    """Train, validation and test tables: the training file, and the test file halved at random.

    Args:
        data_dir: directory holding ``census-income.data[.gz]`` and ``census-income.test[.gz]``.
        split_seed: seed of the 1:1 permutation of the test file into validation and test.
        download: fetch the files from the UCI archive into ``data_dir`` when they are absent.
    """
    if download:
        download_census(data_dir)
    train = read_census_file(find_census_file(data_dir, "census-income.data"))
    held_out = read_census_file(find_census_file(data_dir, "census-income.test"))
    order = np.random.default_rng(split_seed).permutation(held_out.num_rows)
    half = held_out.num_rows // 2
    return train, held_out.take(order[:half]), held_out.take(order[half:])


def download_census(data_dir: str | Path, base_url: str = UCI_URL) -> None:
    """Fetch the two UCI files (gzipped) into ``data_dir`` unless present; verify their sha256."""
    import gzip

    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    for stem, expected in CENSUS_SHA256.items():
        if (data_dir / stem).is_file() or (data_dir / (stem + ".gz")).is_file():
            continue
        target = data_dir / (stem + ".gz")
        partial = target.with_name(target.name + ".partial")
        try:
            with (
                urllib.request.urlopen(base_url + stem + ".gz", timeout=60) as r,
                open(partial, "wb") as out,
            ):
                shutil.copyfileobj(r, out)
            digest = hashlib.sha256()
            with gzip.open(partial, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
        except OSError as exc:
            partial.unlink(missing_ok=True)
            raise DataError(f"download of {stem} from {base_url} failed: {exc}") from exc
        if digest.hexdigest() != expected:
            partial.unlink(missing_ok=True)
            raise DataError(f"downloaded {stem} has the wrong sha256; not kept")
        partial.replace(target)

"""MovieLens 100K (GroupLens, ``ml-100k``), read from the directory the user names.

The files are GroupLens' originals (research use only, no redistribution: mmoe never ships or
downloads them). ``u.data`` holds one rating per row (user, item, rating 1-5, unix time); this
module joins every rating with its user's attributes (``u.user``: age, gender, occupation, zip
code) and its item's (``u.item``: title, release date, 19 genre flags) into one table, and
splits it by time: ratings before ``valid_from`` train, those from ``valid_from`` to
``test_from`` validate, the rest test. A time split keeps the future out of training, as a
recommender meets it; users and items first seen after the cut-off get the unknown code.

Columns of the table: ``user_id``, ``item_id``, ``rating``, ``timestamp``, ``age``, ``gender``,
``occupation``, ``zip_code``, ``zip_region`` (the first character of the zip code), ``title``,
``release_year``, and one 0/1 column per genre (:data:`GENRE_COLUMNS`).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mmoe.errors import DataError

#: The 19 genre flags of ``u.item``, in file order (GroupLens' ``u.genre``).
GENRE_COLUMNS: tuple[str, ...] = (
    "genre_unknown", "genre_action", "genre_adventure", "genre_animation", "genre_children",
    "genre_comedy", "genre_crime", "genre_documentary", "genre_drama", "genre_fantasy",
    "genre_film_noir", "genre_horror", "genre_musical", "genre_mystery", "genre_romance",
    "genre_sci_fi", "genre_thriller", "genre_war", "genre_western",
)  # fmt: skip

FILES = ("u.data", "u.user", "u.item")


def read_movielens(data_dir: str | Path) -> pa.Table:
    """Every rating joined with its user's and its item's attributes, in ``u.data`` order."""
    data_dir = Path(data_dir)
    missing = [name for name in FILES if not (data_dir / name).is_file()]
    if missing:
        raise DataError(
            f"{', '.join(missing)} not found in {data_dir}; point data.data_dir at the ml-100k "
            "directory of MovieLens 100K (GroupLens; it holds u.data, u.user and u.item)"
        )
    ratings = _read(data_dir / "u.data", "\t", ["user_id", "item_id", "rating", "timestamp"])
    users = _read(
        data_dir / "u.user", "|", ["user_id", "age", "gender", "occupation", "zip_code"],
        types={"zip_code": pa.string()},
    )  # fmt: skip
    item_columns = ["item_id", "title", "release_date", "video_release_date", "imdb_url"]
    items = _read(
        data_dir / "u.item", "|", [*item_columns, *GENRE_COLUMNS], encoding="latin1",
        types={"release_date": pa.string(), "video_release_date": pa.string()},
    )  # fmt: skip
    users = users.append_column("zip_region", pc.utf8_slice_codeunits(users["zip_code"], 0, 1))
    year = pc.utf8_slice_codeunits(items["release_date"], 7, 11)  # "01-Jan-1995" -> "1995"
    year = pc.if_else(pc.equal(year, ""), None, year).cast(pa.float64())
    items = items.drop_columns(["release_date", "video_release_date", "imdb_url"])
    items = items.append_column("release_year", year)
    table = _lookup(ratings, users, "user_id")
    table = _lookup(table, items, "item_id")
    return table.set_column(
        table.schema.get_field_index("rating"), "rating", table["rating"].cast(pa.float64())
    )


def split_by_time(
    table: pa.Table, valid_from: dt.datetime, test_from: dt.datetime
) -> tuple[pa.Table, pa.Table, pa.Table]:
    """Train (before ``valid_from``), validation (up to ``test_from``) and test (the rest).

    Naive datetimes are read as UTC. Rows keep their file order within each part.

    Example:
        >>> t = pa.table({"timestamp": [0, 86_400, 2 * 86_400], "rating": [1.0, 2.0, 3.0]})
        >>> parts = split_by_time(t, dt.datetime(1970, 1, 2), dt.datetime(1970, 1, 3))
        >>> [p["rating"].to_pylist() for p in parts]
        [[1.0], [2.0], [3.0]]
    """
    valid_at, test_at = _unix(valid_from), _unix(test_from)
    if not valid_at < test_at:
        raise DataError(
            f"data.valid_from ({valid_from}) must come before data.test_from ({test_from})"
        )
    time = table["timestamp"].to_numpy()
    parts = (time < valid_at, (time >= valid_at) & (time < test_at), time >= test_at)
    names = ("training", "validation", "test")
    for name, rows in zip(names, parts, strict=True):
        if not rows.any():
            first, last = (dt.datetime.fromtimestamp(int(f(time)), dt.UTC) for f in (min, max))
            raise DataError(
                f"the {name} period has no ratings (ratings run from {first:%Y-%m-%d} to "
                f"{last:%Y-%m-%d}); move data.valid_from / data.test_from inside that range"
            )
    return tuple(table.filter(pa.array(rows)) for rows in parts)  # type: ignore[return-value]


def load_movielens(
    data_dir: str | Path, valid_from: dt.datetime, test_from: dt.datetime
) -> tuple[pa.Table, pa.Table, pa.Table]:
    """Train, validation and test tables of MovieLens 100K, split at the two dates."""
    return split_by_time(read_movielens(data_dir), valid_from, test_from)


def _read(
    path: Path,
    delimiter: str,
    names: list[str],
    encoding: str = "utf8",
    types: dict[str, pa.DataType] | None = None,
) -> pa.Table:
    from pyarrow import csv

    try:
        table = csv.read_csv(
            path,
            read_options=csv.ReadOptions(column_names=names, encoding=encoding),
            # Titles hold quotes; GroupLens' files never quote a field.
            parse_options=csv.ParseOptions(delimiter=delimiter, quote_char=False),
            convert_options=csv.ConvertOptions(column_types=types or {}, null_values=[""]),
        )
    except (pa.ArrowInvalid, OSError, UnicodeDecodeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{path}: not a readable MovieLens 100K file: {first}") from exc
    if table.num_rows == 0:
        raise DataError(f"{path}: the file has no rows")
    return table


def _lookup(table: pa.Table, attributes: pa.Table, key: str) -> pa.Table:
    """Append ``attributes``' columns to ``table`` by ``key``; rows keep ``table``'s order."""
    index = pc.index_in(table[key], value_set=attributes[key])
    if index.null_count:
        unknown = table[key].filter(pc.is_null(index))[0].as_py()
        raise DataError(f"{key} {unknown} of u.data has no row in its attribute file")
    rows = index.to_numpy(zero_copy_only=False).astype(np.int64)
    for name in attributes.column_names:
        if name != key:
            table = table.append_column(name, attributes[name].take(rows))
    return table


def _unix(moment: dt.datetime) -> float:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()

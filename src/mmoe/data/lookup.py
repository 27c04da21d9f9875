"""Token → vocabulary index for one categorical feature, built once per fitted vocabulary.

A fitted preprocessor builds one :class:`VocabularyLookup` per categorical feature the first time
it encodes (after fitting or loading) and keeps it, so encoding a small batch costs the rows in
it, not a rebuild of a million-token hash table. Index 0 is unknown, missing or rare; token ``i``
of the vocabulary has index ``i + 1``.

Three paths, chosen per call by the column's type:

- integer columns against a vocabulary of integer tokens: binary search in a sorted array;
- dictionary-encoded columns (Parquet strings read as dictionaries): the dictionary is looked up
  and its codes are gathered per row;
- anything else: the column is dictionary-encoded by Arrow (one hash pass in C++), its distinct
  values are looked up in a hash index built once, and gathered per row;
- a column of at most :data:`SMALL` rows (a request to score a few rows), unless it takes the
  integer path: a Python dict built on the first such call. The hash index's per-call cost
  (about 0.1 ms per column through pandas) outweighs a few dict lookups.

Example:
    >>> lookup = VocabularyLookup(["b", "a", "7"])
    >>> lookup(pa.array(["a", "z", None, "b"])).tolist()
    [2, 0, 0, 1]
    >>> lookup(pa.array([7, 8])).tolist()
    [3, 0]
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from mmoe.data.tables import canonical_strings

#: Columns up to this many rows are looked up in a Python dict (see the module docstring).
SMALL = 16


class VocabularyLookup:
    """Encodes arrays of tokens as ``int32`` vocabulary indices (0 = unknown)."""

    #: How many lookups were ever built (tests count it to show ``transform`` does not rebuild).
    builds = 0

    def __init__(self, tokens: list[str]) -> None:
        VocabularyLookup.builds += 1
        self.size = len(tokens)
        self._index = pd.Index(pd.array(tokens, dtype=object), dtype=object)
        self._index.get_indexer(self._index[:1])  # builds the hash table now, once
        self._int_keys, self._int_codes = _integer_table(tokens)
        self._tokens = tokens
        self._small: dict[str, int] | None = None  # built on the first small call

    def __call__(self, values: pa.Array | pa.ChunkedArray) -> np.ndarray:
        """``int32[N]`` indices of ``values`` (any Arrow type; missing → 0)."""
        if isinstance(values, pa.ChunkedArray):
            chunks = [self(chunk) for chunk in values.chunks]
            return np.concatenate(chunks) if chunks else np.zeros(0, np.int32)
        if pa.types.is_integer(values.type) and self._int_keys is not None:
            return self._integers(values)
        if len(values) <= SMALL:
            return self._few(values)
        if pa.types.is_dictionary(values.type):
            return self._gather(values.dictionary, values.indices)
        encoded = pc.dictionary_encode(canonical_strings(values))
        return self._gather(encoded.dictionary, encoded.indices)

    def _integers(self, values: pa.Array) -> np.ndarray:
        assert self._int_keys is not None and self._int_codes is not None
        x = pc.fill_null(values.cast(pa.int64()), 0).to_numpy()
        at = np.searchsorted(self._int_keys, x).clip(max=len(self._int_keys) - 1)
        found = self._int_keys[at] == x
        if values.null_count:
            found &= pc.is_valid(values).to_numpy(zero_copy_only=False)
        return np.where(found, self._int_codes[at], 0).astype(np.int32)

    def _few(self, values: pa.Array) -> np.ndarray:
        if self._small is None:
            self._small = {token: i + 1 for i, token in enumerate(self._tokens)}
        if pa.types.is_dictionary(values.type):
            values = values.dictionary_decode()
        get = self._small.get
        text = canonical_strings(values).to_pylist()
        return np.array([0 if t is None else get(t, 0) for t in text], dtype=np.int32)

    def _gather(self, dictionary: pa.Array, indices: pa.Array) -> np.ndarray:
        text = canonical_strings(dictionary).to_numpy(zero_copy_only=False)
        codes = (self._index.get_indexer(text) + 1).astype(np.int32)  # -1 (unknown) → 0
        codes = np.append(codes, np.int32(0))  # position len(dictionary): a missing row
        at = pc.fill_null(indices, len(text)).to_numpy(zero_copy_only=False)
        return codes[at]


def _integer_table(tokens: list[str]) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Sorted integer keys and their indices when every token is an integer's canonical text."""
    if not tokens:
        return None, None
    text = pa.array(tokens, pa.string())
    try:
        keys = text.cast(pa.int64()).to_numpy()
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None, None
    if not pc.all(pc.equal(pa.array(keys).cast(pa.string()), text)).as_py():  # "007", "+7"
        return None, None
    order = np.argsort(keys, kind="stable")
    return keys[order], (order + 1).astype(np.int32)

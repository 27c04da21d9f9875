"""The preprocessing and output stages of an exported model, built with the ``onnx`` helpers.

``preprocessing_graph`` turns the raw columns into the network's two inputs exactly as
``Preprocessor.transform`` does (DESIGN.md §4):

- categorical column (strings ``(N,)``) → ``ai.onnx.ml.LabelEncoder`` with the vocabulary as
  keys, values ``1..V`` and ``0`` for anything else (unknown, rare or the missing token)
  → ``categorical`` ``(N, Fc)`` int64;
- numeric column (doubles ``(N,)``, NaN = missing) → optional ``sign(x)·log(1+|x|)`` → NaN and
  ±inf replaced by the training mean → ``(x - mean) / std`` in double → ``numeric`` ``(N, Fn)``
  float32 (the preprocessor also computes in float64 and rounds once to float32);
- numeric encodings (``mmoe.data.encodings``): ``values`` → a ``LabelEncoder`` on doubles
  (``GreaterOrEqual``/``LessOrEqual``/``ReduceSum`` after a transform), bins → one
  ``GreaterOrEqual``/``ReduceSum`` + ``Where(IsNaN)`` over every binned feature at once, both
  appended to ``categorical`` after the categorical features; ``piecewise_linear`` →
  ``Clip((x - lower) / width, 0, 1)`` in the ``numeric`` columns, after the feature's
  standardised value when that is kept.

``output_nodes`` turns the network's ``logits`` ``(N, T)`` into one output per task: the
sigmoid probability of a binary task (float32), the value of a regression task (float32; a
standardised one is ``z * std + mean`` in float64, in the target's own unit). Only standard
operators of the default domain and ``ai.onnx.ml`` are used, so any ONNX runtime runs the result.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

#: Opsets of the exported file: the default domain and ``ai.onnx.ml`` (LabelEncoder; version 4
#: for its tensor attributes, which take the double keys of the ``values`` encoding).
OPSET = 18
ML_OPSET = 4

#: Names of the network's inputs and outputs inside the joined graph.
CATEGORICAL = "categorical"
NUMERIC = "numeric"
LOGITS = "logits"
GATES = "gates"
CODES = "categorical_codes"
FEATURE_CODES = "mmoe/feature_codes"


@dataclass
class GraphPart:
    """Nodes and constants of one stage, with the graph inputs and outputs it adds."""

    nodes: list[onnx.NodeProto] = field(default_factory=list)
    initializers: list[onnx.TensorProto] = field(default_factory=list)
    inputs: list[onnx.ValueInfoProto] = field(default_factory=list)
    outputs: list[onnx.ValueInfoProto] = field(default_factory=list)

    def const(self, name: str, value: np.ndarray) -> str:
        self.initializers.append(numpy_helper.from_array(value, name))
        return name

    def node(self, op: str, inputs: list[str], output: str, **attrs: Any) -> str:
        domain = "ai.onnx.ml" if op == "LabelEncoder" else ""
        self.nodes.append(
            helper.make_node(op, inputs, [output], name=output, domain=domain, **attrs)
        )
        return output


def preprocessing_graph(
    vocabularies: dict[str, list[str]],
    numeric: list[tuple[str, str, float, float]],
    categorical_order: list[str],
    encodings: dict[str, tuple[str, bool, list[float]]] | None = None,
) -> GraphPart:
    """Raw columns → ``categorical`` ``(N, Fc + Fe)`` int64 and ``numeric`` ``(N, W)`` float32.

    Args:
        vocabularies: each categorical feature's tokens; token ``i`` encodes to ``i + 1``.
        numeric: ``(name, transform, mean, std)`` of each numeric feature, in model order.
        categorical_order: the categorical features in model order.
        encodings: ``{name: (kind, keep_raw, values)}`` of each numeric feature
            (``mmoe.data.encodings.NumericEncoding``); ``None``: every feature is standardised.
            Layout as ``encodings.encode_columns``: one code column per ``values`` /
            ``quantile_bins`` / ``tree_bins`` feature after the categorical features; per
            feature in order, the standardised value (when kept) then its piecewise-linear parts.

    The categorical features' own codes (without the encodings' columns) are also left in the
    tensor ``FEATURE_CODES`` ``(N, Fc)`` for the ``categorical_codes`` output.

    Example:
        >>> part = preprocessing_graph({"city": ["a", "b"]}, [("age", "none", 40.0, 10.0)],
        ...                            ["city"])
        >>> [i.name for i in part.inputs]
        ['city', 'age']
    """
    part = GraphPart()
    codes = []  # (N,) int64 per embedded column, in model order
    for name in categorical_order:
        part.inputs.append(helper.make_tensor_value_info(name, TensorProto.STRING, ["N"]))
        vocab = vocabularies[name]
        code = f"mmoe/code/{name}"
        if vocab:
            part.node(
                "LabelEncoder",
                [name],
                code,
                keys_strings=vocab,
                values_int64s=list(range(1, len(vocab) + 1)),
                default_int64=0,
            )
        else:  # every training token was rare: everything encodes to 0
            shape = part.node("Shape", [name], f"mmoe/shape/{name}")
            part.node("ConstantOfShape", [shape], code, value=_int64_tensor(0))
        codes.append(code)
    feature_codes = _stack(part, codes, FEATURE_CODES) if codes else None
    columns, raw = [], {}
    for name, transform, _, _ in numeric:
        part.inputs.append(helper.make_tensor_value_info(name, TensorProto.DOUBLE, ["N"]))
        x = name
        if transform == "log1p":  # sign(x) · log(1 + |x|), as Preprocessor._numeric
            one = part.const(f"mmoe/one/{name}", np.array(1.0, dtype=np.float64))
            magnitude = part.node("Abs", [x], f"mmoe/abs/{name}")
            log = part.node(
                "Log", [part.node("Add", [magnitude, one], f"mmoe/1p/{name}")], f"mmoe/log/{name}"
            )
            x = part.node(
                "Mul", [part.node("Sign", [x], f"mmoe/sign/{name}"), log], f"mmoe/t/{name}"
            )
        else:
            assert transform == "none", f"no ONNX form for numeric transform {transform!r}"
        raw[name] = x
        columns.append(x)
    scaled = None
    if columns:
        stacked = _stack(part, columns, "mmoe/numeric_raw")
        means = part.const("mmoe/means", np.array([m for _, _, m, _ in numeric], np.float64))
        stds = part.const("mmoe/stds", np.array([s for _, _, _, s in numeric], np.float64))
        nan = part.node("IsNaN", [stacked], "mmoe/is_nan")
        inf = part.node("IsInf", [stacked], "mmoe/is_inf")
        missing = part.node("Or", [nan, inf], "mmoe/missing")
        filled = part.node("Where", [missing, means, stacked], "mmoe/filled")
        centred = part.node("Sub", [filled, means], "mmoe/centred")
        scaled = part.node("Div", [centred, stds], "mmoe/scaled")
    if not encodings:
        if scaled is not None:
            part.node("Cast", [scaled], NUMERIC, to=TensorProto.FLOAT)
        if feature_codes:
            part.node("Identity", [feature_codes], CATEGORICAL)
        return part
    wide: list[str] = []  # numeric columns of the model, float64
    z_run: list[int] = []  # standardised columns since the last piecewise parts: one Gather
    binned: list[tuple[str, np.ndarray]] = []  # (input, edges on the raw scale)
    looked_up: list[str] = []  # (N,) int64 code of each `values` feature
    order: list[tuple[int, int]] = []  # (0 binned / 1 looked up, index) per code, model order
    for j, (name, transform, mean, _) in enumerate(numeric):
        kind, keep_raw, values = encodings[name]
        if keep_raw or kind == "standardize":
            z_run.append(j)
        if kind == "piecewise_linear":
            wide += _standardised(part, scaled, z_run, len(numeric))
            z_run = []
            axis1 = part.const(f"mmoe/axis1/{name}", np.array([1], dtype=np.int64))
            x2d = part.node("Unsqueeze", [raw[name], axis1], f"mmoe/col/{name}")
            wide.append(_piecewise_linear(part, name, x2d, mean, values))
        elif kind in ("quantile_bins", "tree_bins"):
            # Codes are decided on the untransformed input against thresholds mapped back
            # through the (monotone) transform: onnxruntime's Log is not numpy's log1p to the
            # last bit, and a code must not flip on a value that sits exactly on an edge.
            edges = lowest_at_least(np.asarray(values, dtype=np.float64), transform)
            order.append((0, len(binned)))
            binned.append((name, edges))
        elif kind == "values":
            order.append((1, len(looked_up)))
            looked_up.append(_values_codes(part, name, values, transform))
    wide += _standardised(part, scaled, z_run, len(numeric))
    if order:
        tail = _encoded_tail(part, binned, looked_up, order)
        _concat(part, [feature_codes, tail] if feature_codes else [tail], CATEGORICAL)
    elif feature_codes:
        part.node("Identity", [feature_codes], CATEGORICAL)
    if wide:
        part.node("Cast", [_concat(part, wide, "mmoe/numeric_wide")], NUMERIC, to=TensorProto.FLOAT)
    return part


def _standardised(part: GraphPart, scaled: str | None, columns: list[int], total: int) -> list[str]:
    """The standardised columns ``columns`` of ``scaled`` ``(N, total)``: one op, or none."""
    if not columns or scaled is None:
        return []
    if columns == list(range(total)):
        return [scaled]
    index = part.const(f"mmoe/z_index/{columns[0]}", np.array(columns, dtype=np.int64))
    return [part.node("Gather", [scaled, index], f"mmoe/z/{columns[0]}", axis=1)]


def _encoded_tail(
    part: GraphPart,
    binned: list[tuple[str, np.ndarray]],
    looked_up: list[str],
    order: list[tuple[int, int]],
) -> str:
    """The encoded numeric features' codes ``(N, E)`` int64, in model order.

    Every bin-encoded feature is coded by one set of ops (``_bin_codes``); the ``values``
    features' codes are stacked after them and one ``Gather`` restores model order when the
    two kinds interleave.
    """
    blocks = []
    if binned:
        blocks.append(_bin_codes(part, binned))
    if looked_up:
        blocks.append(_stack(part, looked_up, "mmoe/values_codes"))
    joined = _concat(part, blocks, "mmoe/encoded_joined")
    position = [k if kind == 0 else len(binned) + k for kind, k in order]
    if position == list(range(len(order))):
        return joined
    index = part.const("mmoe/encoded_order", np.array(position, dtype=np.int64))
    return part.node("Gather", [joined, index], "mmoe/encoded_codes", axis=1)


def _bin_codes(part: GraphPart, binned: list[tuple[str, np.ndarray]]) -> str:
    """Codes ``(N, B)`` int64 of the bin-encoded inputs: ``1 + #{edges e : x >= e}``, 0 for NaN.

    All features at once: the inputs stacked ``(N, B, 1)`` are compared with an edge table
    ``(1, B, K)`` padded with NaN (no value is ``>=`` NaN, so padding never counts), then one
    ``ReduceSum`` over ``K``: one set of ops for all the features, not one per feature.

    Example:
        >>> part = GraphPart()
        >>> out = _bin_codes(part, [("age", np.array([18.0, 65.0])), ("n", np.array([1.0]))])
        >>> table = {t.name: numpy_helper.to_array(t) for t in part.initializers}
        >>> table["mmoe/bins/edges"].tolist()  # padded with NaN
        [[[18.0, 65.0], [1.0, nan]]]
    """
    names = [name for name, _ in binned]
    x = _stack(part, names, "mmoe/bins/x")
    zero = part.const("mmoe/bins/zero", np.array(0, dtype=np.int64))
    one = part.const("mmoe/bins/one", np.array(1, dtype=np.int64))
    nan = part.node("IsNaN", [x], "mmoe/bins/nan")
    width = max(len(edges) for _, edges in binned)
    if width == 0:  # one bin each: every value is code 1
        return part.node("Where", [nan, zero, one], "mmoe/bins/codes")
    table = np.full((1, len(binned), width), np.nan)
    for b, (_, edges) in enumerate(binned):
        table[0, b, : len(edges)] = edges
    axis2 = part.const("mmoe/bins/axis2", np.array([2], dtype=np.int64))
    edge_table = part.const("mmoe/bins/edges", table)
    x3 = part.node("Unsqueeze", [x, axis2], "mmoe/bins/x3")
    above = part.node("GreaterOrEqual", [x3, edge_table], "mmoe/bins/ge")
    above64 = part.node("Cast", [above], "mmoe/bins/ge64", to=TensorProto.INT64)
    count = part.node("ReduceSum", [above64, axis2], "mmoe/bins/count", keepdims=0)
    codes = part.node("Add", [count, one], "mmoe/bins/bin")
    return part.node("Where", [nan, zero, codes], "mmoe/bins/codes")


def _stack(part: GraphPart, columns: list[str], output: str) -> str:
    """Columns ``(N,)`` → ``(N, F)``: one ``Concat`` and a transpose, not one op per column.

    ``Concat`` along axis 0 gives ``(F·N,)``, ``Reshape`` to ``(F, N)`` (``N`` read from the
    first column, so a batch of 0 rows keeps its shape) and ``Transpose``. Per-column
    ``Unsqueeze`` + ``Concat`` cost one operator call per feature on every request.
    """
    if len(columns) == 1:
        axis1 = part.const(f"{output}/axis1", np.array([1], dtype=np.int64))
        return part.node("Unsqueeze", [columns[0], axis1], output)
    flat = part.node("Concat", columns, f"{output}/flat", axis=0)
    count = part.const(f"{output}/count", np.array([len(columns)], dtype=np.int64))
    rows = part.node("Shape", [columns[0]], f"{output}/rows")
    shape = part.node("Concat", [count, rows], f"{output}/shape", axis=0)
    by_feature = part.node("Reshape", [flat, shape], f"{output}/by_feature")
    return part.node("Transpose", [by_feature], output, perm=[1, 0])


def _piecewise_linear(part: GraphPart, name: str, x: str, mean: float, edges: list[float]) -> str:
    """``clip((x - lower) / width, 0, 1)`` ``(N, K)`` float64, NaN replaced by the mean first."""
    edges_arr = np.asarray(edges, dtype=np.float64)
    lower = part.const(f"mmoe/pl_lower/{name}", edges_arr[None, :-1])
    width = part.const(f"mmoe/pl_width/{name}", np.diff(edges_arr)[None, :])
    fill = part.const(f"mmoe/pl_fill/{name}", np.array(mean, dtype=np.float64))
    zero = part.const(f"mmoe/pl_zero/{name}", np.array(0.0, dtype=np.float64))
    one = part.const(f"mmoe/pl_one/{name}", np.array(1.0, dtype=np.float64))
    nan = part.node("IsNaN", [x], f"mmoe/pl_nan/{name}")
    filled = part.node("Where", [nan, fill, x], f"mmoe/pl_filled/{name}")
    shifted = part.node("Sub", [filled, lower], f"mmoe/pl_shift/{name}")
    ratio = part.node("Div", [shifted, width], f"mmoe/pl_ratio/{name}")
    return part.node("Clip", [ratio, zero, one], f"mmoe/pl/{name}")


def _values_codes(part: GraphPart, name: str, values: list[float], transform: str) -> str:
    """The embedded column ``(N,)`` int64 of the ``values`` encoding of input ``name``.

    The input ``(N,)`` is untransformed; ``values`` are in the transformed domain. The code is
    ``k + 1`` where ``f(x)`` equals the ``k``-th kept value, i.e. where ``x`` lies in that
    value's preimage ``[lowest_at_least(v), highest_at_most(v)]``, else 0 (NaN is in none).
    Without a transform each preimage is the value itself, so the code is one exact
    ``LabelEncoder`` lookup on doubles (a hash; ``-0.0`` finds ``0.0``, NaN finds nothing)
    instead of comparisons against every kept value.
    """
    out = f"mmoe/enc/{name}"
    kept = np.asarray(values, dtype=np.float64)
    if not kept.size:  # nothing kept: every value is unknown
        shape = part.node("Shape", [name], f"mmoe/enc_shape/{name}")
        return part.node("ConstantOfShape", [shape], out, value=_int64_tensor(0))
    if transform == "none":
        return part.node(
            "LabelEncoder",
            [name],
            out,
            keys_tensor=numpy_helper.from_array(kept, f"mmoe/enc_keys/{name}"),
            values_tensor=numpy_helper.from_array(
                np.arange(1, kept.size + 1, dtype=np.int64), f"mmoe/enc_values/{name}"
            ),
            default_tensor=numpy_helper.from_array(
                np.array([0], dtype=np.int64), f"mmoe/enc_default/{name}"
            ),
        )
    axes = part.const(f"mmoe/enc_axes/{name}", np.array([1], dtype=np.int64))
    x2d = part.node("Unsqueeze", [name, axes], f"mmoe/enc_x/{name}")
    lo = part.const(f"mmoe/enc_lo/{name}", lowest_at_least(kept, transform)[None, :])
    hi = part.const(f"mmoe/enc_hi/{name}", highest_at_most(kept, transform)[None, :])
    ranks = part.const(f"mmoe/enc_ranks/{name}", np.arange(1, kept.size + 1)[None, :])
    above = part.node("GreaterOrEqual", [x2d, lo], f"mmoe/enc_above/{name}")
    below = part.node("LessOrEqual", [x2d, hi], f"mmoe/enc_below/{name}")
    hit = part.node("And", [above, below], f"mmoe/enc_eq/{name}")
    hit64 = part.node("Cast", [hit], f"mmoe/enc_hit/{name}", to=TensorProto.INT64)
    ranked = part.node("Mul", [hit64, ranks], f"mmoe/enc_ranked/{name}")
    return part.node("ReduceSum", [ranked, axes], out, keepdims=0)


def numeric_transform(x: np.ndarray, transform: str) -> np.ndarray:
    """The numeric transform as ``Preprocessor._numeric`` computes it (numpy, float64)."""
    if transform == "log1p":
        return np.sign(x) * np.log1p(np.abs(x))
    return x


_SIGN = np.int64(-(2**63))
_INF_KEY = np.float64(np.inf).view(np.int64)


def _keys_to_floats(keys: np.ndarray) -> np.ndarray:
    """Ordered integer keys → doubles (``key < 0``: the negative double of magnitude ``-key``)."""
    bits = np.where(keys >= 0, keys, (-keys) | _SIGN)
    return bits.astype(np.int64).view(np.float64)


def lowest_at_least(thresholds: np.ndarray, transform: str, strict: bool = False) -> np.ndarray:
    """Per threshold ``t``: the smallest double ``x`` with ``f(x) >= t`` (``> t`` if ``strict``).

    ``f`` (``numeric_transform``) is non-decreasing, so ``{x : f(x) >= t}`` is ``[result, inf]``.
    Found by bisection over the doubles in order (64 steps), evaluating ``f`` exactly as the
    preprocessor does. ``transform == "none"``: ``t`` itself (next double up if ``strict``).

    Example:
        >>> lowest_at_least(np.array([0.0, 1.5]), "none").tolist()
        [0.0, 1.5]
    """
    t = np.asarray(thresholds, dtype=np.float64)
    lo = np.full(t.shape, -_INF_KEY, dtype=np.int64)  # f(lo) below t (or lo = -inf)
    hi = np.full(t.shape, _INF_KEY, dtype=np.int64)  # f(hi) at least t: f(inf) = inf
    while np.any(hi > lo + 1):
        mid = (lo >> 1) + (hi >> 1) + (lo & hi & 1)  # no overflow: hi - lo exceeds int64
        y = numeric_transform(_keys_to_floats(mid), transform)
        ok = (y > t) if strict else (y >= t)
        hi, lo = np.where(ok, mid, hi), np.where(ok, lo, mid)
    # lo = -inf itself qualifies only for t = -inf
    first = numeric_transform(_keys_to_floats(lo), transform)
    ok_lo = (first > t) if strict else (first >= t)
    return _keys_to_floats(np.where(ok_lo, lo, hi))


def highest_at_most(thresholds: np.ndarray, transform: str) -> np.ndarray:
    """Per value ``v``: the largest double ``x`` with ``f(x) <= v`` (the preimage's top)."""
    above = lowest_at_least(thresholds, transform, strict=True)
    return np.nextafter(above, -np.inf)


def _concat(part: GraphPart, names: list[str], output: str) -> str:
    """``Concat`` along axis 1, or ``Identity`` of a single tensor."""
    if len(names) == 1:
        return part.node("Identity", names, output)
    return part.node("Concat", names, output, axis=1)


def output_nodes(
    task_types: list[tuple[str, str]],
    gates: bool,
    codes: bool,
    target_stats: dict[str, dict[str, float]] | None = None,
) -> GraphPart:
    """``logits`` ``(N, T)`` → one ``(N,)`` output per task (+ ``gates``, codes).

    Args:
        task_types: ``(name, "binary" | "regression")`` per task, in the network's order.
        gates: the network has a ``gates`` ``(N, G, E)`` output to publish.
        codes: publish ``categorical_codes`` ``(N, Fc)`` (0 where a category is unknown).
        target_stats: ``{task: {"mean", "std"}}`` of standardised regression tasks: their
            output is ``float64(z) * std + mean`` in double (the target's own unit, as
            ``TrainedModel.predict``); every other output is float32.
    """
    stats = target_stats or {}
    part = GraphPart()
    for k, (name, kind) in enumerate(task_types):
        index = part.const(f"mmoe/task{k}", np.array(k, dtype=np.int64))
        column = part.node("Gather", [LOGITS, index], f"mmoe/logit/{name}", axis=1)
        if name in stats and kind != "binary":
            std = part.const(f"mmoe/target_std{k}", np.array(stats[name]["std"], np.float64))
            mean = part.const(f"mmoe/target_mean{k}", np.array(stats[name]["mean"], np.float64))
            wide = part.node("Cast", [column], f"mmoe/z64/{name}", to=TensorProto.DOUBLE)
            scaled = part.node("Mul", [wide, std], f"mmoe/zstd/{name}")
            part.node("Add", [scaled, mean], name)
            part.outputs.append(helper.make_tensor_value_info(name, TensorProto.DOUBLE, ["N"]))
            continue
        part.node("Sigmoid" if kind == "binary" else "Identity", [column], name)
        part.outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N"]))
    if gates:
        part.outputs.append(
            helper.make_tensor_value_info(GATES, TensorProto.FLOAT, ["N", None, None])
        )
    if codes:
        part.node("Identity", [FEATURE_CODES], CODES)
        part.outputs.append(helper.make_tensor_value_info(CODES, TensorProto.INT64, ["N", None]))
    return part


def join(
    network: onnx.ModelProto, before: GraphPart | None, after: GraphPart, name: str
) -> onnx.ModelProto:
    """One model: ``before`` feeds the network's inputs, ``after`` reads its outputs.

    With ``before`` ``None`` the network's own inputs stay the model's inputs (tensor inputs).
    """
    net = network.graph
    ours = {n for p in (before, after) if p is not None for n in _produced(p)}
    clash = ours & {o for n in net.node for o in n.output}
    assert not clash, f"tensor names used twice: {sorted(clash)[:3]}"
    nodes = [*(before.nodes if before else []), *net.node, *after.nodes]
    inits = [*(before.initializers if before else []), *net.initializer, *after.initializers]
    inputs = before.inputs if before is not None else list(net.input)
    graph = helper.make_graph(nodes, name, inputs, after.outputs, initializer=inits)
    graph.value_info.extend(net.value_info)
    opsets = [helper.make_opsetid("", OPSET), helper.make_opsetid("ai.onnx.ml", ML_OPSET)]
    model = helper.make_model(graph, opset_imports=opsets, producer_name="mmoe")
    model.ir_version = network.ir_version
    return model


def _produced(part: GraphPart) -> set[str]:
    return {o for n in part.nodes for o in n.output} | {t.name for t in part.initializers}


def _int64_tensor(value: int) -> onnx.TensorProto:
    return helper.make_tensor("value", TensorProto.INT64, [1], [value])

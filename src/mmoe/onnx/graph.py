"""The preprocessing and output stages of an exported model, built with the ``onnx`` helpers.

``preprocessing_graph`` turns the raw columns into the network's two inputs exactly as
``Preprocessor.transform`` does (DESIGN.md §4):

- categorical column (strings ``(N,)``) → ``ai.onnx.ml.LabelEncoder`` with the vocabulary as
  keys, values ``1..V`` and ``0`` for anything else (unknown, rare or the missing token)
  → ``categorical`` ``(N, Fc)`` int64;
- numeric column (doubles ``(N,)``, NaN = missing) → optional ``sign(x)·log(1+|x|)`` → NaN and
  ±inf replaced by the training mean → ``(x - mean) / std`` in double → ``numeric`` ``(N, Fn)``
  float32 (the preprocessor also computes in float64 and rounds once to float32).

``output_nodes`` turns the network's ``logits`` ``(N, T)`` into one output per task: the
sigmoid probability of a binary task, the value of a regression task. Only standard operators
of the default domain and ``ai.onnx.ml`` are used, so any ONNX runtime runs the result.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

#: Opsets of the exported file: the default domain and ``ai.onnx.ml`` (LabelEncoder).
OPSET = 18
ML_OPSET = 2

#: Names of the network's inputs and outputs inside the joined graph.
CATEGORICAL = "categorical"
NUMERIC = "numeric"
LOGITS = "logits"
GATES = "gates"
CODES = "categorical_codes"


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
) -> GraphPart:
    """Raw columns → ``categorical`` ``(N, Fc)`` int64 and ``numeric`` ``(N, Fn)`` float32.

    Args:
        vocabularies: each categorical feature's tokens; token ``i`` encodes to ``i + 1``.
        numeric: ``(name, transform, mean, std)`` of each numeric feature, in model order.
        categorical_order: the categorical features in model order.

    Example:
        >>> part = preprocessing_graph({"city": ["a", "b"]}, [("age", "none", 40.0, 10.0)],
        ...                            ["city"])
        >>> [i.name for i in part.inputs]
        ['city', 'age']
    """
    part = GraphPart()
    axis1 = part.const("mmoe/axis1", np.array([1], dtype=np.int64))
    codes = []
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
        codes.append(part.node("Unsqueeze", [code, axis1], f"mmoe/code2d/{name}"))
    if codes:
        part.node("Concat", codes, CATEGORICAL, axis=1) if len(codes) > 1 else part.node(
            "Identity", codes, CATEGORICAL
        )
    columns = []
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
        columns.append(part.node("Unsqueeze", [x, axis1], f"mmoe/col/{name}"))
    if columns:
        stacked = (
            part.node("Concat", columns, "mmoe/numeric_raw", axis=1)
            if len(columns) > 1
            else columns[0]
        )
        means = part.const("mmoe/means", np.array([m for _, _, m, _ in numeric], np.float64))
        stds = part.const("mmoe/stds", np.array([s for _, _, _, s in numeric], np.float64))
        nan = part.node("IsNaN", [stacked], "mmoe/is_nan")
        inf = part.node("IsInf", [stacked], "mmoe/is_inf")
        missing = part.node("Or", [nan, inf], "mmoe/missing")
        filled = part.node("Where", [missing, means, stacked], "mmoe/filled")
        centred = part.node("Sub", [filled, means], "mmoe/centred")
        scaled = part.node("Div", [centred, stds], "mmoe/scaled")
        part.node("Cast", [scaled], NUMERIC, to=TensorProto.FLOAT)
    return part


def output_nodes(task_types: list[tuple[str, str]], gates: bool, codes: bool) -> GraphPart:
    """``logits`` ``(N, T)`` → one ``(N,)`` float output per task (+ ``gates``, codes).

    Args:
        task_types: ``(name, "binary" | "regression")`` per task, in the network's order.
        gates: the network has a ``gates`` ``(N, G, E)`` output to publish.
        codes: publish ``categorical_codes`` ``(N, Fc)`` (0 where a category is unknown).
    """
    part = GraphPart()
    for k, (name, kind) in enumerate(task_types):
        index = part.const(f"mmoe/task{k}", np.array(k, dtype=np.int64))
        column = part.node("Gather", [LOGITS, index], f"mmoe/logit/{name}", axis=1)
        part.node("Sigmoid" if kind == "binary" else "Identity", [column], name)
        part.outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N"]))
    if gates:
        part.outputs.append(
            helper.make_tensor_value_info(GATES, TensorProto.FLOAT, ["N", None, None])
        )
    if codes:
        part.node("Identity", [CATEGORICAL], CODES)
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

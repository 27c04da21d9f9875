"""The trained network as ONNX: ``categorical (N, Fc) int64, numeric (N, Fn) float32 → logits``.

The network is exported from the model's tensor ``forward`` with ``torch.onnx.export``. The
TorchScript-based exporter (``dynamo=False``) is used where this torch still has it: it runs
in well under a second, needs no extra package, and its output was checked against the model
on every architecture (tests/test_onnx_export.py). ``exporter="dynamo"`` uses torch's newer
``torch.export`` path instead (it needs the ``onnxscript`` package and takes several seconds).
"""

from __future__ import annotations

import io
import logging
import tempfile
import warnings
from pathlib import Path

import onnx
import torch
from torch import Tensor, nn

from mmoe.models.base import MultiTaskModel
from mmoe.onnx.graph import CATEGORICAL, GATES, LOGITS, NUMERIC, OPSET


class _TensorForward(nn.Module):
    """The model's ``forward`` with fixed ``return_gates`` and the inputs it really uses.

    A model without categorical (or numeric) features gets an empty ``(N, 0)`` tensor in place
    of that input, so the exported graph has only the inputs that carry data.
    """

    def __init__(self, model: MultiTaskModel) -> None:
        super().__init__()
        self.model = model
        self.has_categorical = len(model.inputs.cardinalities) > 0
        self.has_numeric = model.inputs.num_numeric > 0

    def forward(self, *inputs: Tensor) -> tuple[Tensor, ...]:
        rows = inputs[0].shape[0]
        given = iter(inputs)
        categorical = next(given) if self.has_categorical else inputs[0].new_zeros(rows, 0).long()
        numeric = next(given) if self.has_numeric else inputs[0].new_zeros(rows, 0).float()
        logits, gates = self.model(categorical, numeric, return_gates=True)
        return (logits, gates) if gates is not None else (logits,)


def network_onnx(model: MultiTaskModel, exporter: str = "torchscript") -> onnx.ModelProto:
    """Export ``model`` (on the CPU, in eval mode) to an in-memory ONNX model.

    Inputs ``categorical`` ``(N, Fc)`` int64 and ``numeric`` ``(N, Fn)`` float32 (each only if
    the model has such features); outputs ``logits`` ``(N, T)`` and, for gated models,
    ``gates`` ``(N, G, E)``. The batch dimension ``N`` is dynamic.
    """
    wrapper = _TensorForward(model.cpu().eval())
    names, example = [], []
    if wrapper.has_categorical:
        names.append(CATEGORICAL)
        example.append(torch.zeros(2, len(model.inputs.cardinalities), dtype=torch.long))
    if wrapper.has_numeric:
        names.append(NUMERIC)
        example.append(torch.zeros(2, model.inputs.num_numeric))
    outputs = [LOGITS, GATES] if model.has_gates else [LOGITS]
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer notes on constant weight shapes, deprecations
        if exporter == "dynamo":
            proto = _dynamo_export(wrapper, tuple(example), names, outputs)
            return onnx.version_converter.convert_version(proto, OPSET)
        buffer = io.BytesIO()
        torch.onnx.export(
            wrapper,
            tuple(example),
            buffer,
            dynamo=False,
            input_names=names,
            output_names=outputs,
            dynamic_axes={n: {0: "N"} for n in names + outputs},
            opset_version=OPSET,
        )
    return onnx.load_from_string(buffer.getvalue())


def _dynamo_export(
    wrapper: nn.Module, example: tuple[Tensor, ...], names: list[str], outputs: list[str]
) -> onnx.ModelProto:
    """``torch.onnx.export(dynamo=True)`` of ``wrapper`` with a dynamic batch dimension."""
    batch = torch.export.Dim("N", min=1)
    # The exporter's registry logs a warning per missing optional package (torchvision ops).
    registry_log = logging.getLogger("torch.onnx")
    level = registry_log.level
    registry_log.setLevel(logging.ERROR)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "network.onnx"
            torch.onnx.export(
                wrapper,
                example,
                str(path),
                dynamo=True,
                input_names=names,
                output_names=outputs,
                # one entry per forward parameter: *inputs is one, a tuple of tensors
                dynamic_shapes=(tuple({0: batch} for _ in names),),
                external_data=False,
                verbose=False,
            )
            return onnx.load(str(path))
    finally:
        registry_log.setLevel(level)

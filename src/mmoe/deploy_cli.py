"""``mmoe export`` and ``mmoe serve``: a trained model as one ONNX file, scored over HTTP."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mmoe.errors import ConfigError


def _require(module: str, extra: str) -> None:
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise ConfigError(
            f"this command needs the {module!r} package: pip install 'mmoe[{extra}]' "
            f"(or pip install {module})"
        )


def export_command(
    run_dir: Annotated[Path, typer.Argument(help="Run directory written by `mmoe train`.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="ONNX file to write.")],
    tensor_inputs: Annotated[
        bool,
        typer.Option(
            "--tensor-inputs",
            help="Take the encoded categorical/numeric tensors instead of raw columns.",
        ),
    ] = False,
    check_data: Annotated[
        str | None,
        typer.Option(
            "--check-data",
            help="CSV/Parquet rows to check the export on (default: the run's validation data).",
        ),
    ] = None,
    check_rows: Annotated[
        int, typer.Option("--check-rows", min=1, help="How many rows to check.")
    ] = 1000,
    exporter: Annotated[
        str,
        typer.Option(help="torch exporter: torchscript (fast) or dynamo (needs onnxscript)."),
    ] = "torchscript",
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing on success.")] = False,
) -> None:
    """Write the model as one ONNX file with the preprocessing inside the graph.

    The file takes one input per feature column (strings for categorical features, doubles for
    numeric ones, NaN = missing) and returns one output per task (probability or value) and,
    for gated models, the gate weights. Before writing, onnxruntime scores validation rows with
    unknown categories and missing values mixed in; the export refuses to write if any output
    differs from `mmoe predict` by more than 1e-5.
    """
    _require("onnx", "onnx")
    _require("onnxruntime", "onnx")
    if exporter not in ("torchscript", "dynamo"):
        raise ConfigError(f"--exporter {exporter!r}: use torchscript or dynamo")
    if exporter == "dynamo":
        _require("onnxscript", "dynamo")
    from mmoe.onnx.export import export

    report = export(
        run_dir,
        output,
        tensor_inputs=tensor_inputs,
        check_data=check_data,
        check_rows=check_rows,
        exporter=exporter,
    )
    if quiet:
        return
    worst = max(report.max_difference.values())
    units = (
        f" ({', '.join(report.standardized)} in standard deviations of the target)"
        if report.standardized
        else ""
    )
    typer.echo(
        f"wrote {report.path} ({report.size_bytes / 1024:.0f} KiB; inputs: "
        f"{len(report.inputs)}, outputs: {', '.join(report.outputs)}); checked on "
        f"{report.rows_checked} rows of {report.checked_on}: largest difference from "
        f"`mmoe predict` {worst:.2g}{units}"
    )


def serve_command(
    model: Annotated[
        Path, typer.Argument(help="Run directory, or an .onnx file written by `mmoe export`.")
    ],
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help="Worker processes, each loading the model (on Linux each has its own socket on "
            "the port, and the kernel spreads connections over them).",
        ),
    ] = 1,
    max_rows: Annotated[
        int, typer.Option(min=1, help="Most rows accepted in one request.")
    ] = 10_000,
    max_body_bytes: Annotated[
        int, typer.Option(min=1, help="Largest request body accepted, in bytes.")
    ] = 8 * 1024 * 1024,
    threads: Annotated[
        int,
        typer.Option(
            min=1, help="onnxruntime threads per worker; scale with --workers rather than this."
        ),
    ] = 1,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "warning",
) -> None:
    """Score a model over HTTP: POST /v1/predict, GET /v1/metadata, /healthz, /readyz, /metrics.

    POST /v1/predict takes JSON ({"rows": [{feature: value, ...}]} or {"columns": {feature:
    [...]}}) or an Arrow IPC stream (Content-Type: application/vnd.apache.arrow.stream, one
    column per feature). The server runs onnxruntime (a run directory is exported first, in a
    child process), so the serving processes do not import torch.

    Example: mmoe serve runs/g1 --port 8000 --workers 2
    """
    for module in ("onnxruntime", "fastapi", "uvicorn"):
        _require(module, "serve")
    from mmoe.serving.requests import Limits
    from mmoe.serving.server import serve

    serve(model, host, port, workers, Limits(max_rows, max_body_bytes), threads, log_level)


__all__ = ["export_command", "serve_command"]

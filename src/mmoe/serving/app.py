"""The HTTP scoring app: FastAPI routes around one onnxruntime session. Imports no torch.

Routes:

- ``POST /v1/predict``: ``{"rows": [...]}`` or ``{"columns": {...}}`` (see
  ``mmoe.serving.requests``), or an Arrow IPC stream with ``Content-Type:
  application/vnd.apache.arrow.stream`` (``mmoe.serving.arrow_body``) → ``{task: [values in
  input order], ...}`` plus ``"gates"`` ``(N, G, E)`` when the body asks ``"gates": true`` (an
  Arrow request: ``?gates=true``);
- ``GET /v1/metadata``: tasks, features with their kinds, versions, gate and expert names;
- ``GET /healthz`` (the process answers, with its pid as ``worker``) and ``GET /readyz`` (the
  model is loaded and scored a warm-up row);
- ``GET /metrics``: Prometheus text (``mmoe.serving.metrics``).

A bad request gets a 4xx with ``{"error": {"kind", "field", "message", "fix"}}``.

Example:
    >>> import uvicorn                                                   # doctest: +SKIP
    >>> uvicorn.run(create_app("model.onnx"), port=8000)                # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from mmoe.errors import ArtifactError
from mmoe.onnx.metadata import ModelInfo
from mmoe.serving.arrow_body import ARROW_STREAM, parse_arrow
from mmoe.serving.metrics import Metrics
from mmoe.serving.requests import Limits, RequestError, parse_body, too_large

#: Environment variable through which ``mmoe serve --workers N`` hands settings to each worker.
SETTINGS_ENV = "MMOE_SERVE_SETTINGS"
CODES = "categorical_codes"
GATES = "gates"
#: Requests of at least this many rows are scored on the app's scoring thread (see create_app).
OFFLOAD_ROWS = 64


class Scorer:
    """An onnxruntime session of an exported mmoe model, with its metadata.

    Args:
        model_path: an ONNX file written by ``mmoe export`` (raw inputs).
        threads: onnxruntime intra-op threads (``None``: onnxruntime's default).
    """

    def __init__(self, model_path: str | Path, threads: int | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
        if not Path(model_path).is_file():
            raise ArtifactError(f"model file not found: {model_path}")
        try:
            self.session = ort.InferenceSession(
                str(model_path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own classes for unreadable files
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ArtifactError(f"{model_path} is not a readable ONNX model ({first})") from None
        self.info = ModelInfo.from_props(self.session.get_modelmeta().custom_metadata_map)
        if not self.info.task_names or not self.info.raw_inputs:
            raise ArtifactError(
                f"{model_path} is not a raw-input model written by `mmoe export` "
                "(export without --tensor-inputs)"
            )
        outputs = {o.name for o in self.session.get_outputs()}
        self.has_gates = GATES in outputs
        self.has_codes = CODES in outputs
        self.version = self.session.get_modelmeta().custom_metadata_map.get("mmoe.version", "")

    def score(
        self, feed: dict[str, np.ndarray], gates: bool
    ) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
        """Per-task outputs (and gates if asked and present); the categorical codes."""
        names = list(self.info.task_names)
        if gates and self.has_gates:
            names.append(GATES)
        if self.has_codes:
            names.append(CODES)
        values = dict(zip(names, self.session.run(names, feed), strict=True))
        codes = values.pop(CODES, None)
        return values, codes

    def metadata(self) -> dict[str, Any]:
        public = self.info.public()
        public.pop("missing_category", None)
        public["gates"] = self.has_gates
        return public


def create_app(
    model_path: str | Path,
    limits: Limits | None = None,
    threads: int | None = None,
    offload_rows: int | None = OFFLOAD_ROWS,
) -> PredictFastPath:
    """The ASGI app serving ``model_path`` (an ONNX file from ``mmoe export``).

    Args:
        model_path: the ONNX file.
        limits: row and byte limits of a request body.
        threads: onnxruntime intra-op threads (``None``: onnxruntime's default).
        offload_rows: requests of at least this many rows are scored on one scoring thread
            while the event loop reads and answers other requests (onnxruntime releases the
            GIL while it computes, so a second core works); smaller ones are scored inline,
            where the hand-over would cost more than it overlaps. ``None``: always inline (a
            worker among several, whose siblings already keep the cores busy).
    """
    limits = limits or Limits()
    scorer = Scorer(model_path, threads)
    info = scorer.info
    metrics = Metrics(info.categorical)
    warm = {n: np.array([info.missing_category], dtype=object) for n in info.categorical}
    warm |= {n: np.array([np.nan]) for n in info.numeric}
    scorer.score(warm, gates=True)  # first run allocates; /readyz answers only after it
    metadata = json.dumps(scorer.metadata())

    scoring_thread = ThreadPoolExecutor(1, "mmoe-score") if offload_rows is not None else None
    app = FastAPI(title="mmoe scoring server", version=scorer.version, docs_url=None)

    async def predict(scope: dict[str, Any], receive: Any) -> tuple[int, bytes]:
        """Status and JSON body of one ``POST /v1/predict``."""
        started = time.perf_counter()
        try:
            raw = await _read_body(scope, receive, limits)
            if _content_type(scope) == ARROW_STREAM:
                parsed = parse_arrow(raw, info, limits, _gates_query(scope))
            else:
                parsed = parse_body(raw, info, limits)
        except RequestError as exc:
            metrics.observe_error(exc.kind)
            metrics.observe_request("/v1/predict", exc.status, time.perf_counter() - started)
            return exc.status, _dumps(exc.body())
        if scoring_thread is not None and parsed.rows >= offload_rows:
            values, codes = await asyncio.get_running_loop().run_in_executor(
                scoring_thread, scorer.score, parsed.feed, parsed.gates
            )
        else:
            values, codes = scorer.score(parsed.feed, parsed.gates)
        if codes is not None:
            metrics.observe_codes(codes)
        body = {name: _json_list(values[name]) for name in info.task_names}
        if parsed.gates:
            body[GATES] = _json_list(values[GATES]) if GATES in values else None
        content = _dumps(body)
        metrics.observe_request("/v1/predict", 200, time.perf_counter() - started, parsed.rows)
        return 200, content

    @app.post("/v1/predict")
    async def predict_route(request: Request) -> Response:
        """The same route through FastAPI (PredictFastPath answers it first; other methods 405)."""
        status, content = await predict(request.scope, request.receive)
        return Response(content, status_code=status, media_type="application/json")

    @app.get("/v1/metadata")
    async def get_metadata() -> Response:
        metrics.observe_request("/v1/metadata", 200, 0.0)
        return Response(metadata, media_type="application/json")

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "worker": os.getpid()}

    @app.get("/readyz")
    async def readyz() -> dict[str, str]:
        return {"status": "ready"}

    @app.get("/metrics")
    async def get_metrics() -> Response:
        return Response(metrics.render(), media_type="text/plain; version=0.0.4")

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        kind = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http")
        metrics.observe_error(kind)
        metrics.observe_request(request.url.path, exc.status_code, 0.0)
        fix = "see GET /v1/metadata; scoring is POST /v1/predict"
        err = RequestError(exc.status_code, kind, "path", str(exc.detail), fix)
        return JSONResponse(err.body(), status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        metrics.observe_error("bad_request")
        err = RequestError(422, "bad_request", "body", str(exc)[:200], "see GET /v1/metadata")
        return JSONResponse(err.body(), status_code=422)

    app.state.scorer = scorer
    app.state.metrics = metrics
    return PredictFastPath(app, predict)


class PredictFastPath:
    """ASGI app: ``POST /v1/predict`` goes straight to the scorer, every other request to FastAPI.

    Skipping the framework's routing, request and response objects on the one hot route saves
    CPU on every request (measured with benchmarks/serving.py's server-CPU column; see the
    README); the other routes keep FastAPI's handling and error pages.
    """

    def __init__(self, app: FastAPI, predict: Any) -> None:
        self.app = app
        self.predict = predict
        self.state = app.state

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != "/v1/predict" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        status, content = await self.predict(scope, receive)
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(content)).encode()),
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": content})


async def _read_body(scope: dict[str, Any], receive: Any, limits: Limits) -> bytes:
    """The body, refused as soon as it passes the byte limit (declared or streamed)."""
    for key, value in scope["headers"]:
        if key == b"content-length" and value.isdigit() and int(value) > limits.max_body_bytes:
            raise too_large(int(value), limits)
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # the client went away: nothing to answer
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limits.max_body_bytes:
            raise too_large(size, limits)
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _content_type(scope: dict[str, Any]) -> str:
    """The request's media type, lower case, without parameters (``""`` when absent)."""
    for key, value in scope["headers"]:
        if key == b"content-type":
            return value.decode("latin-1").split(";")[0].strip().lower()
    return ""


def _gates_query(scope: dict[str, Any]) -> bool:
    """``?gates=true`` (or ``1``) of an Arrow request; a 422 for any other value."""
    for pair in scope.get("query_string", b"").decode("latin-1").split("&"):
        key, _, value = pair.partition("=")
        if key == "gates":
            if value.lower() in ("true", "1"):
                return True
            if value.lower() in ("false", "0", ""):
                return False
            raise RequestError(
                422, "wrong_type", "gates", f"gates={value[:20]} in the URL", "use ?gates=true"
            )
    return False


def _dumps(body: dict[str, Any]) -> bytes:
    try:
        import orjson
    except ImportError:  # pragma: no cover
        return json.dumps(body, allow_nan=False).encode()
    return orjson.dumps(body)


def _json_list(values: np.ndarray) -> list[Any]:
    """``values.tolist()``, with ``None`` for a non-finite value (an overflowing input)."""
    if np.isfinite(values).all():
        return values.tolist()
    return np.where(np.isfinite(values), values, None).tolist()


def app_from_environment() -> PredictFastPath:
    """App factory for uvicorn workers: settings come as JSON in ``MMOE_SERVE_SETTINGS``."""
    settings = json.loads(os.environ[SETTINGS_ENV])
    limits = Limits(settings["max_rows"], settings["max_body_bytes"])
    return create_app(
        settings["model"], limits, settings.get("threads"), settings.get("offload_rows")
    )


__all__ = ["Scorer", "app_from_environment", "create_app"]

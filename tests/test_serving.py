"""``mmoe serve``: a real uvicorn server on 127.0.0.1, a short load test, and every bad request."""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("fastapi")
uvicorn = pytest.importorskip("uvicorn")

import mmoe  # noqa: E402
from mmoe.data.tables import canonical_strings  # noqa: E402
from mmoe.serving.app import create_app  # noqa: E402
from mmoe.serving.requests import Limits  # noqa: E402


class Server:
    """uvicorn serving ``app`` in a thread; ``request`` opens one connection per call."""

    def __init__(self, app) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        while not self.server.started:
            time.sleep(0.01)

    def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, body=body, headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join()


@pytest.fixture(scope="module")
def model(tiny_census_runs: dict, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    path = tmp_path_factory.mktemp("serve") / "mmoe.onnx"
    mmoe.export(tiny_census_runs["mmoe"], path, check_rows=100)
    return tiny_census_runs["mmoe"], path


@pytest.fixture(scope="module")
def server(model: tuple[Path, Path]) -> Iterator[Server]:
    running = Server(create_app(model[1], Limits(max_rows=300, max_body_bytes=600_000)))
    yield running
    running.stop()


def json_rows(table, trained: mmoe.TrainedModel) -> list[dict]:
    """Rows as JSON objects the way a client sends them (categories as text, NaN as null)."""
    columns = {}
    for feat in trained.preprocessor.features.categorical:
        columns[feat.name] = canonical_strings(table.column(feat.name)).to_pylist()
    for feat in trained.preprocessor.features.numeric:
        columns[feat.name] = table.column(feat.name).to_pylist()
    rows = [
        dict(zip(columns, values, strict=True)) for values in zip(*columns.values(), strict=True)
    ]
    for i, row in enumerate(rows):  # unknown and missing categories, missing numbers
        if i % 5 == 0:
            row["race"] = "never-seen"
        if i % 7 == 0:
            row["sex"] = None
        if i % 3 == 0:
            row["age"] = None
    return rows


def test_the_server_process_does_not_import_torch() -> None:
    code = "import sys, mmoe.serving.server, mmoe.serving.app; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_load_with_malformed_requests_mixed_in(server: Server, model, census_table) -> None:
    """300 requests from 8 threads, a third malformed: no 5xx, every answer matches its request."""
    trained = mmoe.load(model[0])
    table = census_table.slice(0, 400)
    rows = json_rows(table, trained)
    import pyarrow as pa

    expected = trained.predict(pa.Table.from_pylist(rows))
    good = {"race": "x"}  # a body missing every other feature
    bad_bodies = [
        (b"", 400, "body"),
        (b"{not json", 400, "body"),
        (b"[1, 2]", 422, "body"),
        (json.dumps({"rows": [good]}).encode(), 422, "rows[0].class of worker"),
        (json.dumps({"rows": [{**rows[0], "age": "old"}]}).encode(), 422, "rows[0].age"),
        (json.dumps({"rows": [{**rows[0], "race": {"a": 1}}]}).encode(), 422, "rows[0].race"),
        (json.dumps({"rows": []}).encode(), 422, "rows"),
        (json.dumps({"rows": rows[:1] * 301}).encode(), 413, "rows"),
        (b"{" + b'"rows": [' + b" " * 600_001 + b"]}", 413, "body"),
        (json.dumps({"columns": {"age": [1, 2], "race": ["a"]}}).encode(), 422, None),
        (json.dumps({"rows": rows[:1], "gates": "yes"}).encode(), 422, "gates"),
    ]

    def one(i: int) -> tuple[int, str]:
        if i % 3 == 2:
            body, status, field = bad_bodies[i % len(bad_bodies)]
            got, raw = server.request("POST", "/v1/predict", body)
            error = json.loads(raw)["error"]
            assert got == status, (i, got, raw[:200])
            assert field is None or error["field"] == field, (error, field)
            assert error["message"] and error["fix"]
            return got, "bad"
        start, size = (i * 7) % 300, 1 + i % 40
        part = rows[start : start + size]
        if i % 2:
            body = {"rows": part, "gates": True}
        else:
            body = {"columns": {k: [r[k] for r in part] for k in part[0]}}
        got, raw = server.request("POST", "/v1/predict", json.dumps(body).encode())
        assert got == 200, raw[:300]
        answer = json.loads(raw)
        for task in trained.task_names:
            want = expected[task].to_numpy()[start : start + len(part)]
            np.testing.assert_allclose(answer[task], want, rtol=0, atol=1e-5)
        if i % 2:
            assert np.asarray(answer["gates"]).shape == (len(part), 2, 3)
        return got, "good"

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(300)))
    assert len(results) == 300 and all(status < 500 for status, _ in results)
    status, health = server.request("GET", "/healthz")
    assert status == 200 and json.loads(health) == {"status": "ok"}
    metrics = server.request("GET", "/metrics")[1].decode()
    assert 'mmoe_requests_total{endpoint="/v1/predict",status="200"} 200' in metrics
    assert 'mmoe_errors_total{kind="missing_feature"}' in metrics
    share = next(line for line in metrics.splitlines() if 'share{feature="race"}' in line)
    assert 0.15 < float(share.split()[-1]) < 0.3  # a fifth of the rows carry an unseen race


def test_metadata_and_probes(server: Server) -> None:
    status, raw = server.request("GET", "/v1/metadata")
    meta = json.loads(raw)
    assert status == 200 and [t["name"] for t in meta["tasks"]] == ["income", "marital"]
    kinds = {f["name"]: f["kind"] for f in meta["features"]}
    assert kinds["age"] == "numeric" and kinds["race"] == "categorical"
    assert meta["gates"] is True and meta["architecture"] == "mmoe"
    assert server.request("GET", "/readyz")[0] == 200
    status, raw = server.request("GET", "/v2/nothing")
    assert status == 404 and json.loads(raw)["error"]["kind"] == "not_found"
    assert server.request("GET", "/v1/predict")[0] == 405


def test_serve_command_rejects_a_bad_target(tmp_path: Path, capsys) -> None:
    from tests.test_cli import assert_one_line_error, cli

    (tmp_path / "bad.onnx").write_bytes(b"not a model")
    result = cli("serve", tmp_path / "bad.onnx", capsys=capsys)
    assert_one_line_error(result, "not a readable ONNX model")
    result = cli("serve", tmp_path / "missing", capsys=capsys)
    assert_one_line_error(result, "neither an .onnx file nor a run directory")

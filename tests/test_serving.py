"""``mmoe serve``: a real uvicorn server on 127.0.0.1, a short load test, and every bad request."""

from __future__ import annotations

import http.client
import json
import os
import signal
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
from mmoe.serving.app import OFFLOAD_ROWS, create_app  # noqa: E402
from mmoe.serving.requests import Limits  # noqa: E402
from mmoe.serving.workers import START_GRACE_SECONDS, reuse_port_supported  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """uvicorn serving ``app`` in a thread; ``request`` opens one connection per call."""

    def __init__(self, app) -> None:
        self.port = free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        while not self.server.started:
            time.sleep(0.01)

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        content_type: str = "application/json",
    ) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, body=body, headers={"Content-Type": content_type})
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
        # every 10th: at least OFFLOAD_ROWS rows, scored on the app's scoring thread
        start, size = (i * 7) % 300, (OFFLOAD_ROWS + i % 37) if i % 10 == 0 else 1 + i % 40
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
    assert status == 200 and json.loads(health) == {"status": "ok", "worker": os.getpid()}
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


def health(port: int, conn: http.client.HTTPConnection | None = None) -> int | None:
    """The answering worker's pid from ``GET /healthz`` (``None`` while nothing answers)."""
    conn = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/healthz")
        return json.loads(conn.getresponse().read())["worker"]
    except OSError:
        return None


def children(pid: int) -> set[int]:
    return {int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}


@pytest.mark.skipif(
    not reuse_port_supported(), reason="one SO_REUSEPORT socket per worker needs Linux"
)
def test_workers_share_the_port_spread_connections_and_are_replaced(model) -> None:
    """``mmoe serve --workers 2``: a real supervisor with two worker processes."""
    port = free_port()
    cmd = [sys.executable, "-m", "mmoe", "serve", str(model[1]), "--port", str(port)]
    started = time.monotonic()
    proc = subprocess.Popen([*cmd, "--workers", "2"], stderr=subprocess.PIPE, text=True)
    try:
        # ready: each worker listens only once its model is loaded, so wait until both have
        # answered on fresh connections
        deadline, seen = time.monotonic() + 60, set()
        while len(children(proc.pid)) < 2 or seen != children(proc.pid):
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
            seen.add(health(port))
            seen.discard(None)
            time.sleep(0.02)
        workers = children(proc.pid)
        # 24 keep-alive connections opened at once (a burst one worker could accept alone from
        # a shared socket): the kernel hashes each to one worker's own socket, and all 24 on
        # one worker has probability 2**-23
        conns = [http.client.HTTPConnection("127.0.0.1", port, timeout=10) for _ in range(24)]
        for conn in conns:
            conn.connect()
        answered = [health(port, conn) for conn in conns]
        assert set(answered) == workers, (answered, workers)
        # a second server on the same port stops with one line instead of sharing it
        second = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        lines = [line for line in second.stderr.splitlines() if line.strip()]
        assert second.returncode == 1 and len(lines) == 1, second.stderr
        assert lines[0].startswith("error: cannot listen on")
        # a worker that dies (after its start-up) is replaced; the other keeps serving
        time.sleep(max(0.0, started + START_GRACE_SECONDS + 0.5 - time.monotonic()))
        victim = answered[0]
        survivor = next(pid for pid in answered if pid != victim)
        os.kill(victim, signal.SIGKILL)
        while health(port) != survivor:  # new connections reach the survivor meanwhile
            assert time.monotonic() < deadline + 30
            time.sleep(0.05)
        while len(children(proc.pid) - {victim}) < 2:
            assert proc.poll() is None and time.monotonic() < deadline + 30
            time.sleep(0.1)
        replaced = children(proc.pid)
        assert victim not in replaced and replaced & workers == {survivor}
    finally:
        proc.send_signal(signal.SIGTERM)
        status = proc.wait(60)
    assert status == 0
    assert not Path(f"/proc/{max(replaced - workers)}").exists()  # the new worker stopped too


def arrow_stream(table) -> bytes:
    """``table`` as the bytes of an Arrow IPC stream (what a client POSTs)."""
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def test_arrow_body_scores_like_json_and_predict(server: Server, model, census_table) -> None:
    """An Arrow IPC stream body gives the JSON body's answers and ``predict``'s (1e-5)."""
    import pyarrow as pa

    from mmoe.serving.arrow_body import ARROW_STREAM

    trained = mmoe.load(model[0])
    rows = json_rows(census_table.slice(0, 120), trained)
    expected = trained.predict(pa.Table.from_pylist(rows))
    columns = {k: [r[k] for r in rows] for k in rows[0]}
    numeric = {f.name for f in trained.preprocessor.features.numeric}
    table = pa.table(
        {k: pa.array(v, pa.float64() if k in numeric else pa.string()) for k, v in columns.items()}
    )
    status, raw = server.request(
        "POST", "/v1/predict?gates=true", arrow_stream(table), ARROW_STREAM
    )
    assert status == 200, raw[:300]
    answer = json.loads(raw)
    _, from_json = server.request("POST", "/v1/predict", json.dumps({"rows": rows}).encode())
    for task in trained.task_names:
        np.testing.assert_allclose(answer[task], expected[task].to_numpy(), rtol=0, atol=1e-5)
        assert answer[task] == json.loads(from_json)[task]
    assert np.asarray(answer["gates"]).shape == (120, 2, 3)
    # a dictionary-encoded category, an integer numeric column, a chunked table: same answers
    varied = table.set_column(
        table.schema.get_field_index("race"), "race", table.column("race").dictionary_encode()
    )
    varied = pa.concat_tables([varied.slice(0, 50), varied.slice(50)])
    status, raw = server.request("POST", "/v1/predict", arrow_stream(varied), ARROW_STREAM)
    assert status == 200 and json.loads(raw)["income"] == answer["income"]
    assert "gates" not in json.loads(raw)


def test_bad_arrow_bodies_get_a_4xx_naming_the_field(server: Server, model, census_table) -> None:
    import pyarrow as pa

    from mmoe.serving.arrow_body import ARROW_STREAM

    trained = mmoe.load(model[0])
    rows = json_rows(census_table.slice(0, 3), trained)
    numeric = {f.name for f in trained.preprocessor.features.numeric}
    good = pa.table(
        {k: pa.array([r[k] for r in rows], pa.float64() if k in numeric else pa.string())
         for k in rows[0]}
    )  # fmt: skip
    file_format = pa.BufferOutputStream()
    with pa.ipc.new_file(file_format, good.schema) as writer:
        writer.write_table(good)
    age = good.schema.get_field_index("age")
    cases = [
        (b"", "/v1/predict", 400, "empty_body", "body"),
        (b"not arrow at all", "/v1/predict", 400, "bad_arrow", "body"),
        (arrow_stream(good)[:-40], "/v1/predict", 400, "bad_arrow", "body"),  # cut short
        (file_format.getvalue().to_pybytes(), "/v1/predict", 400, "bad_arrow", "body"),
        (arrow_stream(good.drop_columns(["age"])), "/v1/predict", 422, "missing_feature",
         "columns.age"),
        (arrow_stream(good.set_column(age, "age", pa.array(["old"] * 3))), "/v1/predict", 422,
         "wrong_type", "columns.age"),
        (arrow_stream(good.set_column(0, good.column_names[0], pa.array([[1]] * 3))),
         "/v1/predict", 422, "wrong_type", f"columns.{good.column_names[0]}"),
        (arrow_stream(good.slice(0, 0)), "/v1/predict", 422, "no_rows", "body"),
        (arrow_stream(pa.concat_tables([good] * 101)), "/v1/predict", 413, "too_many_rows",
         "body"),
        (arrow_stream(good), "/v1/predict?gates=maybe", 422, "wrong_type", "gates"),
    ]  # fmt: skip
    for body, path, status, kind, field in cases:
        got, raw = server.request("POST", path, body, ARROW_STREAM)
        error = json.loads(raw)["error"]
        assert (got, error["kind"], error["field"]) == (status, kind, field), raw[:300]
        assert error["message"] and error["fix"]
    got, raw = server.request("POST", "/v1/predict", arrow_stream(good), ARROW_STREAM)
    assert got == 200 and len(json.loads(raw)["income"]) == 3  # still serving

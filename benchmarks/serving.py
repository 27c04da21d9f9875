"""Serving speed: `mmoe serve` under a bounded load against in-process onnxruntime and predict.

Starts `python -m mmoe serve MODEL.onnx` on 127.0.0.1 (start-up time and RSS measured), drives it
with a bounded load generator (keep-alive HTTP/1.1 connections on asyncio; each cell capped by a
request count and a duration) at concurrency 1, 8, 32 and request sizes 1, 32, 256 rows of the
census test file, with JSON (``rows``) and Arrow IPC stream bodies (``--bodies``), and prints
p50/p99 latency, rows/s and errors per cell. In the same run it
measures the in-process onnxruntime rows/s on pre-encoded arrays (the ceiling; the
``--tensor-inputs`` export, batches of 1/32/256; also two threads calling it at once, the
reference for a server on both cores), the raw-input export the server runs (on
ready arrays: the graph's own cost) and ``TrainedModel.predict`` rows/s on
DataFrames of the same sizes (the Python path), interleaved, and prints the ratios.

    python benchmarks/serving.py RUN_DIR                       # the table
    python benchmarks/serving.py RUN_DIR --soak 60             # + 60 s with malformed requests
    python benchmarks/serving.py RUN_DIR --parity              # full test file: predict/ONNX/server

RUN_DIR is a census run directory (e.g. ``mmoe train configs/census/group1-mmoe.yaml --set
data.data_dir=DIR --out runs/g1``); the census files are read from its config's ``data_dir``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

import mmoe
from mmoe.data.census import read_census_file
from mmoe.data.tables import canonical_strings
from mmoe.onnx.metadata import ModelInfo, table_feed
from mmoe.serving.arrow_body import ARROW_STREAM, parse_arrow
from mmoe.serving.requests import Limits, parse_body

SIZES = (1, 32, 256)
CONCURRENCY = (1, 8, 32)


def parse_arrow_body(body: bytes, info: ModelInfo, limits: Limits):
    """``parse_arrow`` with the JSON parser's signature (no gates)."""
    return parse_arrow(body, info, limits, False)


MALFORMED = [
    b"",
    b"{not json",
    b'{"rows": []}',
    b'{"rows": [{"age": 1}]}',
    b'{"columns": {"age": [1, 2], "race": ["x"]}}',
    b'{"rows": [{"age": "old"}], "gates": 3}',
]


def json_rows(table: pa.Table, trained: mmoe.TrainedModel) -> list[dict]:
    columns = {}
    for feat in trained.preprocessor.features.categorical:
        columns[feat.name] = canonical_strings(table.column(feat.name)).to_pylist()
    for feat in trained.preprocessor.features.numeric:  # NaN is not JSON: null is missing
        values = table.column(feat.name).to_pylist()
        columns[feat.name] = [None if v is None or v != v else v for v in values]
    return [dict(zip(columns, v, strict=True)) for v in zip(*columns.values(), strict=True)]


def arrow_columns(table: pa.Table, trained: mmoe.TrainedModel) -> pa.Table:
    """The feature columns as a client would send them in Arrow: categories as text, doubles."""
    columns = {}
    for feat in trained.preprocessor.features.categorical:
        columns[feat.name] = canonical_strings(table.column(feat.name))
    for feat in trained.preprocessor.features.numeric:
        columns[feat.name] = table.column(feat.name).cast(pa.float64())
    return pa.table(columns)


def arrow_stream(table: pa.Table) -> bytes:
    """``table`` as one Arrow IPC stream (the body of an Arrow request)."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def server_processes(pid: int) -> list[int]:
    """``pid`` and its worker processes (``mmoe serve --workers N`` forks N children)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended while we looked
            continue
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return [pid, *children]


def rss_mib(pid: int) -> float:
    """Resident memory of the server: the process and its workers together."""
    total = 0.0
    for one in server_processes(pid):
        for line in Path(f"/proc/{one}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) / 1024
    return total


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Client:
    """One keep-alive HTTP/1.1 connection: POST a body, read status and body."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(
        self, path: str, body: bytes, content_type: str = "application/json"
    ) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        self.writer.write(head + body)
        assert self.reader is not None
        status_line = await self.reader.readline()
        status = int(status_line.split()[1])
        length, close = 0, False
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            key, _, value = line.decode().partition(":")
            if key.lower() == "content-length":
                length = int(value)
            if key.lower() == "connection" and "close" in value.lower():
                close = True
        payload = await self.reader.readexactly(length)
        if close:
            self.writer.close()
            self.writer = None
        return status, payload


async def drive(
    port: int,
    bodies: list[tuple[bytes, int]],
    concurrency: int,
    max_requests: int,
    max_seconds: float,
    check,
    content_type: str = "application/json",
) -> dict:
    """Send ``bodies`` round-robin from ``concurrency`` connections; latency per request."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    problems: list[str] = []
    sent = 0
    deadline = time.perf_counter() + max_seconds

    async def worker() -> None:
        nonlocal sent
        client = Client(port)
        while sent < max_requests and time.perf_counter() < deadline:
            index = sent
            sent += 1
            body, rows = bodies[index % len(bodies)]
            start = time.perf_counter()
            status, payload = await client.post("/v1/predict", body, content_type)
            latencies.append(time.perf_counter() - start)
            statuses[status] = statuses.get(status, 0) + 1
            problem = check(index % len(bodies), status, payload, rows)
            if problem:
                problems.append(problem)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    return {
        "requests": len(latencies),
        "seconds": elapsed,
        "latencies": latencies,
        "statuses": statuses,
        "problems": problems,
    }


def start_server(model: Path, port: int, threads: int | None, workers: int) -> tuple:
    cmd = [sys.executable, "-m", "mmoe", "serve", str(model), "--port", str(port)]
    cmd += ["--workers", str(workers)] + (["--threads", str(threads)] if threads else [])
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    import http.client

    seen: set[int] = set()  # every worker listens once its model is loaded: wait for all
    while len(seen) < workers:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            seen.add(json.loads(conn.getresponse().read())["worker"])
        except OSError:
            if proc.poll() is not None:
                raise SystemExit(f"server exited: {proc.stderr.read()}") from None
            time.sleep(0.05)
    return proc, time.perf_counter() - started


def rate(fn, rows: int, seconds: float = 2.0) -> tuple[float, float]:
    """rows per wall second and rows per CPU second of ``fn`` (after one warm-up call).

    On a shared machine the CPU figure is the steadier one: it counts only this process's work.
    """
    fn()
    n, start, cpu = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - start < seconds:
        fn()
        n += 1
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    return n * rows / wall, n * rows / max(cpu, 1e-9)


def rate_two_callers(fn, rows: int, seconds: float = 1.0) -> float:
    """rows per wall second of two threads calling ``fn`` at once (onnxruntime drops the GIL)."""
    fn()
    counts = [0, 0]
    stop = time.perf_counter() + seconds

    def loop(k: int) -> None:
        while time.perf_counter() < stop:
            fn()
            counts[k] += 1

    threads = [threading.Thread(target=loop, args=(k,)) for k in range(2)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts) * rows / (time.perf_counter() - start)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds so far of the server: process ``pid`` and its workers."""
    total = 0
    for one in server_processes(pid):
        fields = Path(f"/proc/{one}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def predict_before(trained: mmoe.TrainedModel, df) -> np.ndarray:
    """``TrainedModel.predict`` as it was before this change: whole-frame conversion, 2 threads."""
    from mmoe.inference import predict_logits

    batch = trained.preprocessor.transform(pa.Table.from_pandas(df, preserve_index=False), False)
    logits, _ = predict_logits(trained.model, batch)
    return 1.0 / (1.0 + np.exp(-logits.numpy().astype(np.float64)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--max-requests", type=int, default=2000, help="cap per cell")
    parser.add_argument("--max-seconds", type=float, default=8.0, help="cap per cell")
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime threads, server")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument(
        "--sizes", default=",".join(map(str, SIZES)), help="rows per request, comma-separated"
    )
    parser.add_argument(
        "--concurrency",
        default=",".join(map(str, CONCURRENCY)),
        help="requests in flight, comma-separated",
    )
    parser.add_argument("--soak", type=float, default=0.0, help="seconds of mixed load at the end")
    parser.add_argument("--parity", action="store_true", help="full test file parity check")
    parser.add_argument("--json", type=Path, help="write every figure here")
    parser.add_argument(
        "--bodies", default="json,arrow", help="request body forms: json (rows), arrow (IPC stream)"
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    concurrency = [int(c) for c in args.concurrency.split(",")]

    import onnxruntime as ort

    trained = mmoe.load(args.run_dir)
    data_dir = Path(trained.config.data.data_dir)
    test_file = next(data_dir.glob("census-income.test*"))
    table = read_census_file(test_file)
    tmp = Path(tempfile.mkdtemp(prefix="mmoe-bench-"))
    raw_model, tensor_model = tmp / "raw.onnx", tmp / "tensor.onnx"
    mmoe.export(args.run_dir, raw_model)
    mmoe.export(args.run_dir, tensor_model, tensor_inputs=True)
    report: dict = {"run_dir": str(args.run_dir), "cpus": os.cpu_count()}
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start")

    if args.parity:
        parity(trained, raw_model, table, args)
        return

    sample = table.slice(0, 4096)
    rows = json_rows(sample, trained)
    expected = trained.predict(sample)
    tasks = list(trained.task_names)

    # -- in-process: onnxruntime on encoded arrays, TrainedModel.predict before/after ---------
    inproc: dict = {}
    columns = arrow_columns(sample, trained)
    request_bodies = {
        n: {
            "json": json.dumps({"rows": rows[:n]}).encode(),
            "arrow": arrow_stream(columns.slice(0, n)),
        }
        for n in sizes
    }
    batch = trained.preprocessor.transform(sample, labels=False)
    cat = batch.categorical.numpy().astype(np.int64)
    num = batch.numeric.numpy()
    raw_options = ort.SessionOptions()
    raw_options.intra_op_num_threads = 1
    raw_session = ort.InferenceSession(str(raw_model), raw_options)
    raw_info = ModelInfo.from_props(raw_session.get_modelmeta().custom_metadata_map)
    sessions = {}
    for threads in (1, None):
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        sessions[threads or 0] = ort.InferenceSession(str(tensor_model), options)
    frames = {n: sample.slice(0, n).to_pandas() for n in sizes}
    for n in sizes:
        figures: dict = {}
        for _ in range(2):  # interleaved
            for key, session in sessions.items():
                feed = {"categorical": cat[:n], "numeric": num[:n]}
                r, c = rate(lambda s=session, f=feed: s.run(tasks, f), n, 1.0)
                figures.setdefault(f"ort_threads_{key or 'default'}", []).append(r)
                figures.setdefault(f"ort_threads_{key or 'default'}_cpu", []).append(c)
            feed = {"categorical": cat[:n], "numeric": num[:n]}
            one = sessions[1]
            r = rate_two_callers(lambda s=one, f=feed: s.run(tasks, f), n)
            figures.setdefault("ort_two_callers", []).append(r)
            feed = table_feed(sample.slice(0, n), raw_info)  # what the server's session runs
            r, c = rate(lambda f=feed: raw_session.run(tasks, f), n, 1.0)
            figures.setdefault("raw_graph_threads_1", []).append(r)
            figures.setdefault("raw_graph_threads_1_cpu", []).append(c)
            # reading a request body into that feed, as the server does (no HTTP)
            for form, body in request_bodies[n].items():
                parse = parse_body if form == "json" else parse_arrow_body
                r, c = rate(lambda p=parse, b=body: p(b, raw_info, Limits()), n, 1.0)
                figures.setdefault(f"parse_{form}", []).append(r)
                figures.setdefault(f"parse_{form}_cpu", []).append(c)
            df = frames[n]
            after, after_cpu = rate(lambda df=df: trained.predict(df), n)
            figures.setdefault("predict_after", []).append(after)
            figures.setdefault("predict_after_cpu", []).append(after_cpu)
            before, before_cpu = rate(lambda df=df: predict_before(trained, df), n)
            figures.setdefault("predict_before", []).append(before)
            figures.setdefault("predict_before_cpu", []).append(before_cpu)
        inproc[n] = figures
        cells = "  ".join(f"{k} {statistics.median(v):,.0f}" for k, v in figures.items())
        print(f"in-process rows/s, batch {n}: {cells}")
    report["in_process"] = inproc

    # -- the server --------------------------------------------------------------------------
    port = free_port()
    proc, startup = start_server(raw_model, port, args.threads, args.workers)
    rss_start = rss_mib(proc.pid)
    print(f"server: started in {startup:.2f} s, RSS {rss_start:.0f} MiB (pid {proc.pid})")
    report["server"] = {"startup_seconds": startup, "rss_start_mib": rss_start}

    def bodies_of(size: int, form: str) -> list[tuple[bytes, int]]:
        out = []
        for start in range(0, len(rows) - size + 1, max(size, 97)):
            if form == "arrow":
                body = arrow_stream(columns.slice(start, size))
            else:
                body = json.dumps({"rows": rows[start : start + size]}).encode()
            out.append((body, start))
        return out[:64]

    def checker(bodies: list[tuple[bytes, int]], size: int):
        def check(index: int, status: int, payload: bytes, start: int) -> str | None:
            if status != 200:
                return f"status {status}: {payload[:120]!r}"
            answer = json.loads(payload)
            for task in tasks:
                got = np.asarray(answer[task], dtype=float)
                want = expected[task].to_numpy()[start : start + size]
                if got.shape != want.shape or np.max(np.abs(got - want)) > 1e-5:
                    return f"mismatched answer for rows {start}..{start + size}"
            return None

        return check

    cells = []
    print(
        "\nbody   concurrency  rows/req  requests   p50 ms   p99 ms     rows/s  errors  "
        "vs ort(best)  vs 2 ort  vs predict  server CPU ms/req  rows/CPU-s  vs ort CPU"
    )
    forms = [f.strip() for f in args.bodies.split(",") if f.strip()]
    for size, form, conc in [(s, f, c) for s in sizes for f in forms for c in concurrency]:
        bodies = bodies_of(size, form)
        one_caller = [k for k in inproc[size] if k.startswith("ort_threads") and "_cpu" not in k]
        ceiling = max(statistics.median(inproc[size][k]) for k in one_caller)
        two_callers = statistics.median(inproc[size]["ort_two_callers"])
        cpu_ceiling = statistics.median(inproc[size]["ort_threads_1_cpu"])
        predict_rate = statistics.median(inproc[size]["predict_after"])
        cpu_before = cpu_seconds(proc.pid)
        result = asyncio.run(
            drive(
                port,
                bodies,
                conc,
                args.max_requests,
                args.max_seconds,
                checker(bodies, size),
                ARROW_STREAM if form == "arrow" else "application/json",
            )
        )
        server_cpu = (cpu_seconds(proc.pid) - cpu_before) / max(result["requests"], 1)
        lat = np.array(result["latencies"]) * 1e3
        rows_s = result["requests"] * size / result["seconds"]
        errors = sum(n for s, n in result["statuses"].items() if s != 200)
        cell = {
            "body": form,
            "concurrency": conc,
            "rows": size,
            "requests": result["requests"],
            "p50_ms": float(np.percentile(lat, 50)),
            "p99_ms": float(np.percentile(lat, 99)),
            "rows_per_s": rows_s,
            "errors": errors,
            "problems": result["problems"][:5],
            "vs_ort": rows_s / ceiling,
            "vs_ort_two_callers": rows_s / two_callers,
            "vs_predict": rows_s / predict_rate,
            "server_cpu_ms_per_request": server_cpu * 1e3,
            "rows_per_server_cpu_second": size / max(server_cpu, 1e-9),
            "vs_ort_cpu": size / max(server_cpu, 1e-9) / cpu_ceiling,
        }
        cells.append(cell)
        print(
            f"{form:<5}  {conc:>11}  {size:>8}  {cell['requests']:>8}  {cell['p50_ms']:>7.2f}  "
            f"{cell['p99_ms']:>7.2f}  {rows_s:>9,.0f}  {errors:>6}  "
            f"{cell['vs_ort']:>11.2f}  {cell['vs_ort_two_callers']:>8.2f}  "
            f"{cell['vs_predict']:>10.1f}  "
            f"{cell['server_cpu_ms_per_request']:>17.2f}  "
            f"{cell['rows_per_server_cpu_second']:>10,.0f}  {cell['vs_ort_cpu']:>10.2f}"
            + (f"  PROBLEMS: {result['problems'][:2]}" if result["problems"] else "")
        )
    report["cells"] = cells

    if args.soak > 0:
        report["soak"] = soak(port, proc.pid, rows, expected, tasks, args.soak)
    report["server"]["rss_end_mib"] = rss_mib(proc.pid)
    print(f"server RSS at end: {report['server']['rss_end_mib']:.0f} MiB")
    proc.terminate()
    proc.wait(10)
    print(f"load average {os.getloadavg()[0]:.1f} at end (other work shared the machine)")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


def soak(port: int, pid: int, rows, expected, tasks, seconds: float) -> dict:
    """``seconds`` of 8 connections, every 5th request malformed; RSS sampled every 10 s."""
    bodies = []
    for i in range(200):
        if i % 5 == 4:
            bodies.append((MALFORMED[i % len(MALFORMED)], -1))
        else:
            size = (1, 32, 256)[i % 3]
            start = (i * 13) % (len(rows) - size)
            bodies.append((json.dumps({"rows": rows[start : start + size]}).encode(), start))
    sizes = {i: (1, 32, 256)[i % 3] for i in range(200)}

    def check(index: int, status: int, payload: bytes, start: int) -> str | None:
        if start < 0:
            return None if 400 <= status < 500 else f"malformed request got {status}"
        if status != 200:
            return f"status {status}"
        answer = json.loads(payload)
        want = expected[tasks[0]].to_numpy()[start : start + sizes[index]]
        got = np.asarray(answer[tasks[0]], dtype=float)
        if got.shape != want.shape or np.max(np.abs(got - want)) > 1e-5:
            return "mismatch"
        return None

    samples = [rss_mib(pid)]
    result: dict = {"requests": 0, "statuses": {}, "problems": []}
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        part = asyncio.run(
            drive(port, bodies, 8, 10**9, min(10.0, end - time.perf_counter()), check)
        )
        result["requests"] += part["requests"]
        for s, n in part["statuses"].items():
            result["statuses"][s] = result["statuses"].get(s, 0) + n
        result["problems"] += part["problems"]
        samples.append(rss_mib(pid))
    result["rss_mib"] = samples
    five = sum(n for s, n in result["statuses"].items() if s >= 500)
    print(
        f"\nsoak {seconds:.0f} s: {result['requests']} requests, statuses {result['statuses']}, "
        f"5xx {five}, problems {len(result['problems'])}; RSS MiB every 10 s: "
        + ", ".join(f"{r:.0f}" for r in samples)
    )
    return result


def parity(trained: mmoe.TrainedModel, model: Path, table: pa.Table, args) -> None:
    """Every row of the test file, with injected unknowns/NaNs: predict vs ONNX vs server."""
    import onnxruntime as ort

    from mmoe.onnx.export import _inject_unknowns
    from mmoe.onnx.metadata import ModelInfo, table_feed

    damaged = _inject_unknowns(table.select(trained.preprocessor.features.column_names), trained)
    expected = trained.predict(damaged)
    session = ort.InferenceSession(str(model))
    info = ModelInfo.from_props(session.get_modelmeta().custom_metadata_map)
    tasks = list(trained.task_names)
    got = dict(zip(tasks, session.run(tasks, table_feed(damaged, info)), strict=True))
    port = free_port()
    proc, _ = start_server(model, port, args.threads, 1)
    rows = json_rows(damaged, trained)
    columns = arrow_columns(damaged, trained)
    served: dict[str, dict[str, list]] = {"json": {t: [] for t in tasks}}
    served["arrow"] = {t: [] for t in tasks}

    async def send_all() -> None:
        client = Client(port)
        for start in range(0, len(rows), 1000):
            bodies = {
                "json": (
                    json.dumps({"rows": rows[start : start + 1000]}).encode(),
                    "application/json",
                ),
                "arrow": (arrow_stream(columns.slice(start, 1000)), ARROW_STREAM),
            }
            for form, (body, content_type) in bodies.items():
                status, payload = await client.post("/v1/predict", body, content_type)
                assert status == 200, payload[:200]
                answer = json.loads(payload)
                for t in tasks:
                    served[form][t] += answer[t]

    asyncio.run(send_all())
    proc.terminate()
    for t in tasks:
        want = expected[t].to_numpy()
        print(
            f"{t}: {len(want)} rows; max |onnx - predict| {np.max(np.abs(got[t] - want)):.2e}; "
            + "; ".join(
                f"max |server ({form}) - predict| "
                f"{np.max(np.abs(np.asarray(served[form][t]) - want)):.2e}"
                for form in served
            )
        )


if __name__ == "__main__":
    main()

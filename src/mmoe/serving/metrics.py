"""Prometheus text-format metrics of one server process (written here; no client library).

Exposed at ``GET /metrics``:

- ``mmoe_requests_total{endpoint, status}``: requests answered;
- ``mmoe_rows_total``: rows scored;
- ``mmoe_errors_total{kind}``: rejected requests by kind (``missing_feature``, ``wrong_type``...);
- ``mmoe_request_seconds``: histogram of ``/v1/predict`` latency inside the server;
- ``mmoe_category_values_total{feature}`` and ``mmoe_unknown_category_total{feature}``: values
  seen and values outside the training vocabulary (or missing); their ratio is drift;
- ``mmoe_unknown_category_share{feature}``: that ratio since the process started.

With ``--workers N`` every worker keeps its own counts; a scrape reaches one worker.
"""

from __future__ import annotations

import bisect
import threading
from collections import Counter

import numpy as np

#: Upper bounds (seconds) of the latency histogram's buckets.
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    """Counters and a latency histogram; ``render()`` gives the exposition text.

    Example:
        >>> m = Metrics(["city"])
        >>> m.observe_request("/v1/predict", 200, 0.002, rows=3)
        >>> 'mmoe_rows_total 3' in m.render()
        True
    """

    def __init__(self, categorical: list[str]) -> None:
        self._lock = threading.Lock()
        self.categorical = list(categorical)
        self.requests: Counter[tuple[str, int]] = Counter()
        self.errors: Counter[str] = Counter()
        self.rows = 0
        self.bucket_counts = [0] * (len(BUCKETS) + 1)
        self.latency_sum = 0.0
        self.seen = np.zeros(len(self.categorical), dtype=np.int64)
        self.unknown = np.zeros(len(self.categorical), dtype=np.int64)

    def observe_request(self, endpoint: str, status: int, seconds: float, rows: int = 0) -> None:
        with self._lock:
            self.requests[(endpoint, status)] += 1
            self.rows += rows
            if endpoint == "/v1/predict":
                self.bucket_counts[bisect.bisect_left(BUCKETS, seconds)] += 1
                self.latency_sum += seconds

    def observe_error(self, kind: str) -> None:
        with self._lock:
            self.errors[kind] += 1

    def observe_codes(self, codes: np.ndarray) -> None:
        """Count the unknown (code 0) values of each categorical feature, ``codes`` ``(N, Fc)``."""
        with self._lock:
            self.seen += codes.shape[0]
            self.unknown += (codes == 0).sum(axis=0)

    def render(self) -> str:
        with self._lock:
            lines = [
                "# HELP mmoe_requests_total Requests answered, by endpoint and HTTP status.",
                "# TYPE mmoe_requests_total counter",
            ]
            for (endpoint, status), n in sorted(self.requests.items()):
                lines.append(
                    f'mmoe_requests_total{{endpoint="{_esc(endpoint)}",status="{status}"}} {n}'
                )
            lines += [
                "# HELP mmoe_rows_total Rows scored.",
                "# TYPE mmoe_rows_total counter",
                f"mmoe_rows_total {self.rows}",
                "# HELP mmoe_errors_total Rejected requests, by kind of error.",
                "# TYPE mmoe_errors_total counter",
            ]
            lines += [
                f'mmoe_errors_total{{kind="{k}"}} {n}' for k, n in sorted(self.errors.items())
            ]
            lines += [
                "# HELP mmoe_request_seconds Latency of /v1/predict inside the server.",
                "# TYPE mmoe_request_seconds histogram",
            ]
            total = 0
            for bound, n in zip([*BUCKETS, float("inf")], self.bucket_counts, strict=True):
                total += n
                le = "+Inf" if bound == float("inf") else f"{bound:g}"
                lines.append(f'mmoe_request_seconds_bucket{{le="{le}"}} {total}')
            lines.append(f"mmoe_request_seconds_sum {self.latency_sum:.6f}")
            lines.append(f"mmoe_request_seconds_count {total}")
            families = (
                ("mmoe_category_values_total", "counter", "Categorical values scored.", self.seen),
                (
                    "mmoe_unknown_category_total",
                    "counter",
                    "Categorical values outside the training vocabulary, or missing.",
                    self.unknown,
                ),
            )
            for name, kind, text, values in families:
                lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
                for feature, n in zip(self.categorical, values, strict=True):
                    lines.append(f'{name}{{feature="{_esc(feature)}"}} {int(n)}')
            lines += [
                "# HELP mmoe_unknown_category_share Share of unknown categories since start.",
                "# TYPE mmoe_unknown_category_share gauge",
            ]
            for feature, seen, unknown in zip(
                self.categorical, self.seen, self.unknown, strict=True
            ):
                share = unknown / seen if seen else 0.0
                lines.append(
                    f'mmoe_unknown_category_share{{feature="{_esc(feature)}"}} {share:.6g}'
                )
        return "\n".join(lines) + "\n"


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


__all__ = ["BUCKETS", "Metrics"]

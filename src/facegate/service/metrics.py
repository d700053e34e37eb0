"""``/metrics`` in Prometheus's text format: requests, latencies and decisions.

Counted per process: requests by method, route and status; a latency histogram
per route; decisions by kind and outcome. With several worker processes each one
writes its counts to a file of a shared folder (at most twice a second, so within
half a second of a request, and when it stops), and whichever worker answers a
scrape sums them all: the figures are the service's, not one worker's.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: latency buckets, in seconds
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
FLUSH_EVERY = 0.5


class Metrics:
    def __init__(self, directory: str | None = None) -> None:
        self.directory = Path(directory) if directory else None
        self._lock = threading.Lock()
        self._requests: dict[str, int] = defaultdict(int)  # "method route status"
        self._latency: dict[str, list[float]] = {}  # route -> bucket counts, then sum, then count
        self._decisions: dict[str, int] = defaultdict(int)  # "kind outcome"
        self._flushed = 0.0
        self._timer: threading.Timer | None = None

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self._requests[f"{method} {route} {status}"] += 1
            row = self._latency.setdefault(route, [0.0] * (len(BUCKETS) + 2))
            for i, bound in enumerate(BUCKETS):
                if seconds <= bound:
                    row[i] += 1
            row[-2] += seconds
            row[-1] += 1
        self.flush()

    def decision(self, kind: str, outcome: str) -> None:
        with self._lock:
            self._decisions[f"{kind} {outcome}"] += 1

    def _snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": dict(self._requests),
                "latency": {k: list(v) for k, v in self._latency.items()},
                "decisions": dict(self._decisions),
            }

    def flush(self, force: bool = False) -> None:
        """Write this process's counts to the shared folder: at once if ``force`` or none were written for
        :data:`FLUSH_EVERY` seconds, else within that time (a timer), so the last request is never left out."""
        if self.directory is None:
            return
        wait = FLUSH_EVERY - (time.monotonic() - self._flushed)
        if not force and wait > 0:
            with self._lock:
                if self._timer is None:
                    self._timer = threading.Timer(wait, self.flush, kwargs={"force": True})
                    self._timer.daemon = True
                    self._timer.start()
            return
        with self._lock:
            self._timer = None
            self._flushed = time.monotonic()
        target = self.directory / f"worker-{os.getpid()}.json"
        temporary = target.with_suffix(f".{threading.get_ident()}.tmp")
        try:
            temporary.write_text(json.dumps(self._snapshot()))
            os.replace(temporary, target)
        except OSError:
            pass  # metrics never fail a request

    def _totals(self) -> tuple[dict[str, Any], int]:
        own = self._snapshot()
        parts = [own]
        if self.directory is not None:
            mine = f"worker-{os.getpid()}.json"
            for path in sorted(self.directory.glob("worker-*.json")):
                if path.name != mine:
                    try:
                        parts.append(json.loads(path.read_text()))
                    except (OSError, ValueError):
                        continue
        total: dict[str, Any] = {"requests": defaultdict(int), "latency": {}, "decisions": defaultdict(int)}
        for part in parts:
            for key in ("requests", "decisions"):
                for label, n in part.get(key, {}).items():
                    total[key][label] += n
            for route, row in part.get("latency", {}).items():
                into = total["latency"].setdefault(route, [0.0] * len(row))
                for i, value in enumerate(row):
                    into[i] += value
        return total, len(parts)

    def render(self, gauges: dict[str, tuple[str, float]]) -> str:
        """The Prometheus text exposition; ``gauges``: name -> (help, value)."""
        total, workers = self._totals()
        out = [
            "# HELP facegate_requests_total HTTP requests answered, by method, route and status.",
            "# TYPE facegate_requests_total counter",
        ]
        for label, n in sorted(total["requests"].items()):
            method, route, status = label.split(" ")
            out.append(f'facegate_requests_total{{method="{method}",route="{_escape(route)}",status="{status}"}} {n}')
        out += [
            "# HELP facegate_request_duration_seconds Time to answer a request, by route.",
            "# TYPE facegate_request_duration_seconds histogram",
        ]
        for route, row in sorted(total["latency"].items()):
            name = _escape(route)
            for bound, n in zip(BUCKETS, row, strict=False):
                out.append(f'facegate_request_duration_seconds_bucket{{route="{name}",le="{bound:g}"}} {int(n)}')
            out.append(f'facegate_request_duration_seconds_bucket{{route="{name}",le="+Inf"}} {int(row[-1])}')
            out.append(f'facegate_request_duration_seconds_sum{{route="{name}"}} {row[-2]:.6f}')
            out.append(f'facegate_request_duration_seconds_count{{route="{name}"}} {int(row[-1])}')
        out += [
            "# HELP facegate_decisions_total Decisions made, by kind (verify, identify, compare) and outcome.",
            "# TYPE facegate_decisions_total counter",
        ]
        for label, n in sorted(total["decisions"].items()):
            kind, outcome = label.split(" ")
            out.append(f'facegate_decisions_total{{kind="{kind}",outcome="{outcome}"}} {n}')
        gauges = {**gauges, "facegate_worker_processes": ("Worker processes whose counts are summed here.", workers)}
        for name, (text, value) in gauges.items():
            out += [f"# HELP {name} {text}", f"# TYPE {name} gauge", f"{name} {value:g}"]
        return "\n".join(out) + "\n"


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class MetricsMiddleware:
    """ASGI middleware: each request's status and duration, by its route's template ("/v1/people/{name}")."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            self.metrics.observe(scope["method"], route, status, time.perf_counter() - start)

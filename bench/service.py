"""`facegate serve` under load, beside the library's own batch throughput on the same photos.

A 100-person gallery is enrolled from LFW (one photo each). The probes are other
photos of them and photos of 100 people who are not enrolled. The library's batch
throughput is measured first (``facegate.represent_many`` on every probe, then each
decision from the gallery), then the service is started (`facegate serve`, one worker
process per core) and CLIENTS concurrent clients send door checks and
identifications, mixed, for SECONDS: requests per second, latency percentiles,
errors, and whether each answer agrees with the library's. Last, one client alone
sends door checks one after another: a warm door check's latency.

    python bench/service.py                       # 32 clients for 60 s
    python bench/service.py --clients 32 --seconds 20 --workers 2

The load generator is a lean asyncio HTTP/1.1 client (keep-alive, requests built
once) so that it takes as little of the machine's CPU from the service as possible;
it runs on the same machine, so the service's figures include that competition.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
LFW = REPO.parent / "shared" / "data" / "lfw" / "images"


@dataclass
class Probe:
    path: Path
    data: bytes
    claim: str | None  # a door check's claimed name (None: an identification)
    expected: object  # the library's answer: verified (door) or identity (identification)


@dataclass
class Load:
    latencies: list[float] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    disagreements: int = 0

    def error(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1


def choose_people(people: int, strangers: int, seed: int) -> tuple[dict[str, list[Path]], list[Path]]:
    folders = sorted(p for p in LFW.iterdir() if p.is_dir())
    rng = random.Random(seed)
    several = [f for f in folders if len(list(f.glob("*.jpg"))) >= 3]
    single = [f for f in folders if len(list(f.glob("*.jpg"))) == 1]
    enrolled = {f.name: sorted(f.glob("*.jpg")) for f in rng.sample(several, people)}
    others = [sorted(f.glob("*.jpg"))[0] for f in rng.sample(single, strangers)]
    return enrolled, others


def library_run(
    gallery_path: str, enrolled: dict[str, list[Path]], strangers: list[Path]
) -> tuple[list[Probe], float, int]:
    """Enroll the gallery, then the library's batch throughput on the probes: (probes the library could
    decide on, with its answers; photos per second; photos without a usable face)."""
    from facegate import represent_many
    from facegate.errors import FacegateError
    from facegate.gallery import Gallery

    with Gallery(gallery_path) as gallery:
        report = gallery.enroll_many({name: [paths[0]] for name, paths in enrolled.items()})
        if report.failed:
            print(f"  {len(report.failed)} people could not be enrolled (no face found): left out", file=sys.stderr)
        candidates: list[tuple[Path, str | None]] = [
            (path, name) for name, paths in enrolled.items() if name in report.enrolled for path in paths[1:3]
        ]
        candidates += [(path, None) for path in strangers]
        photos = [path.read_bytes() for path, _ in candidates]
        start = time.perf_counter()
        faces = represent_many(photos, gallery.model_name, gallery.detector_backend, tta=gallery.tta)
        probes, failed = [], 0
        for (path, name), data, found in zip(candidates, photos, faces, strict=True):
            if isinstance(found, FacegateError):
                failed += 1
                continue
            embedding = found[0].embedding
            try:
                if gallery.quality is not None:  # the gate the service's gallery applies to every probe
                    gallery.quality.check(found[0])
                who = gallery.identify_embedding(embedding).identity
                probes.append(Probe(path, data, None, who))
                if name is not None:
                    verified = gallery.verify_embedding(embedding, name).verified
                    if verified:  # the door checks sent are genuine ones the library lets in (no lockouts)
                        probes.append(Probe(path, data, name, verified))
            except FacegateError:  # the quality gate: neither yes nor no
                failed += 1
        elapsed = time.perf_counter() - start
    return probes, len(photos) / elapsed, failed


# -- a lean HTTP/1.1 client --------------------------------------------------------------------------------
def multipart(fields: dict[str, str], photo: bytes, boundary: str = "facegatebench") -> bytes:
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode() for k, v in fields.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="photo"; filename="p.jpg"\r\n'
        "Content-Type: image/jpeg\r\n\r\n".encode()
        + photo
        + b"\r\n"
    )
    return b"".join(parts) + f"--{boundary}--\r\n".encode()


def request_bytes(probe: Probe, port: int, key: str) -> bytes:
    body = multipart({"name": probe.claim} if probe.claim else {}, probe.data)
    path = "/v1/verify" if probe.claim else "/v1/identify"
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-API-Key: {key}\r\n"
        f"Content-Type: multipart/form-data; boundary=facegatebench\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> tuple[int, bytes]:
    writer.write(request)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    length = next(int(line.split(":", 1)[1]) for line in lines if line.lower().startswith("content-length:"))
    return status, await reader.readexactly(length)


Requests = list[list[tuple[Probe, bytes]]]


async def client(port: int, requests: Requests, until: float, load: Load, seed: int) -> None:
    """Requests one after another until ``until``: each from one of ``requests``' lists, chosen evenly."""
    rng = random.Random(seed)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < until:
            pool = requests[rng.randrange(len(requests))]
            probe, request = pool[rng.randrange(len(pool))]
            start = time.perf_counter()
            try:
                status, body = await exchange(reader, writer, request)
            except (OSError, asyncio.IncompleteReadError) as exc:
                load.error(type(exc).__name__)
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                continue
            load.latencies.append(time.perf_counter() - start)
            load.kinds.append("door" if probe.claim else "identify")
            if status != 200:
                load.error(f"HTTP {status}")
                continue
            answer = json.loads(body)
            got = answer["verified"] if probe.claim else answer["identity"]
            load.disagreements += got != probe.expected
    finally:
        writer.close()


async def run_load(port: int, requests: Requests, clients: int, seconds: float) -> tuple[Load, float]:
    load = Load()
    start = time.perf_counter()
    await asyncio.gather(*(client(port, requests, start + seconds, load, i) for i in range(clients)))
    return load, time.perf_counter() - start


# -- the service ------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_service(gallery: str, port: int, workers: int, key: str) -> subprocess.Popen:
    """`facegate serve`, once every worker has loaded the model (``key``: an admin key, for /metrics)."""
    facegate = str(Path(sys.executable).with_name("facegate"))
    command = [facegate, "serve", "--gallery", gallery, "--port", str(port), "--workers", str(workers)]
    server = subprocess.Popen([*command, "--log-level", "warning"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the service exited: {server.stderr.read().decode() if server.stderr else ''}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                auth = f"Authorization: Bearer {key}\r\n"
                s.sendall(f"GET /metrics HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n".encode())
                reply = b""
                while chunk := s.recv(65536):
                    reply += chunk
            if f"facegate_worker_processes {workers}".encode() in reply:  # every worker has loaded the model
                return server
        except OSError:
            pass
        time.sleep(0.5)
    server.kill()
    raise SystemExit("the service did not start within 3 minutes")


def percentiles(values: list[float]) -> tuple[float, float, float]:
    p50, p95, p99 = np.percentile(np.array(values) * 1000, [50, 95, 99])
    return float(p50), float(p95), float(p99)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="service worker processes")
    parser.add_argument("--people", type=int, default=100)
    parser.add_argument("--strangers", type=int, default=100)
    parser.add_argument("--single", type=float, default=10, help="seconds of one client's door checks")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    if not LFW.is_dir():
        raise SystemExit(f"LFW not found at {LFW} (see ../shared/data/README.md)")

    with tempfile.TemporaryDirectory() as tmp:
        gallery = str(Path(tmp) / "bench.sqlite")
        enrolled, strangers = choose_people(args.people, args.strangers, args.seed)
        print(
            f"library: enrolling {len(enrolled)} people, then embedding and deciding on the probes...", file=sys.stderr
        )
        probes, library_rate, no_face = library_run(gallery, enrolled, strangers)

        from facegate.gallery.keys import create_key
        from facegate.gallery.store import GalleryStore

        store = GalleryStore.open_existing(gallery)
        with store.transaction() as db:
            _, key = create_key(db, "door", "bench")
            _, admin = create_key(db, "admin", "bench")
        store.close()
        port = free_port()
        print(
            f"service: {args.workers} worker(s) on port {port}, {args.clients} clients for {args.seconds:g} s",
            file=sys.stderr,
        )
        server = start_service(gallery, port, args.workers, admin)
        try:
            doors = [(p, request_bytes(p, port, key)) for p in probes if p.claim]
            identifications = [(p, request_bytes(p, port, key)) for p in probes if not p.claim]
            load, elapsed = asyncio.run(run_load(port, [doors, identifications], args.clients, args.seconds))
            single, _ = asyncio.run(run_load(port, [doors], 1, args.single))
        finally:
            server.send_signal(signal.SIGINT)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()

    answered = len(load.latencies) - sum(load.errors.values())
    rate = answered / elapsed
    p50, p95, p99 = percentiles(load.latencies)
    s50, s95, _ = percentiles(single.latencies)
    door_share = load.kinds.count("door") / max(1, len(load.kinds))
    figures = {
        "clients": args.clients,
        "seconds": round(elapsed, 1),
        "workers": args.workers,
        "people": len(enrolled),
        "probe_photos": len({p.path for p in probes}),
        "door_checks_sent": sum(1 for p in probes if p.claim),
        "door_share": round(door_share, 3),
        "requests": len(load.latencies),
        "requests_per_s": round(rate, 1),
        "p50_ms": round(p50, 1),
        "p95_ms": round(p95, 1),
        "p99_ms": round(p99, 1),
        "errors": sum(load.errors.values()),
        "error_kinds": load.errors,
        "disagreements_with_library": load.disagreements,
        "library_photos_per_s": round(library_rate, 1),
        "service_over_library": round(rate / library_rate, 2),
        "single_door_p50_ms": round(s50, 1),
        "single_door_p95_ms": round(s95, 1),
        "single_door_requests": len(single.latencies),
        "photos_without_a_usable_face": no_face,
        "cpus": os.cpu_count(),
    }
    print(
        f"\n{args.clients} clients x {elapsed:.0f} s against {len(enrolled)} people ({args.workers} workers, "
        f"{door_share:.0%} door checks, {figures['probe_photos']} LFW photos)\n"
    )
    print("| measure | value |")
    print("|---|---:|")
    rows = [
        ("requests per second", f"{rate:.1f}"),
        ("latency p50 / p95 / p99", f"{p50:.0f} / {p95:.0f} / {p99:.0f} ms"),
        ("errors", f"{figures['errors']} of {len(load.latencies)}"),
        ("answers differing from the library's", f"{load.disagreements}"),
        ("library batch throughput (represent_many + decisions)", f"{library_rate:.1f} photos/s"),
        ("service / library", f"{rate / library_rate:.2f}"),
        ("one client, warm door check p50 / p95", f"{s50:.0f} / {s95:.0f} ms"),
    ]
    for name, value in rows:
        print(f"| {name} | {value} |")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()

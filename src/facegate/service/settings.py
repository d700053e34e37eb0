"""What a service is started with; passed to worker processes as JSON in an environment variable."""

from __future__ import annotations

import ipaddress
import json
import os
from dataclasses import asdict, dataclass, field

from facegate.gallery.lockout import LockoutPolicy
from facegate.pipeline import DEFAULT_DETECTOR

#: the environment variable that hands the settings to uvicorn's worker processes
SETTINGS_ENV = "FACEGATE_SERVE_SETTINGS"


@dataclass(frozen=True)
class ServeSettings:
    gallery: str
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    detector: str = DEFAULT_DETECTOR
    fmr: float | None = None
    fpir: float | None = None
    #: the largest request body accepted, in MiB (413 above it)
    max_upload_mb: float = 10.0
    #: keep decision photos this many days (0: only their SHA-256)
    keep_photos_days: float = 0.0
    lockout: LockoutPolicy = field(default_factory=LockoutPolicy)
    #: a folder where each worker process writes its metrics, so /metrics sums all workers (None: this process)
    metrics_dir: str | None = None
    #: load and run the model once at start-up, so the first request is as fast as the others
    warm_up: bool = True

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ServeSettings:
        values = json.loads(text)
        values["lockout"] = LockoutPolicy(**values.get("lockout", {}))
        return cls(**values)

    @classmethod
    def from_env(cls) -> ServeSettings:
        text = os.environ.get(SETTINGS_ENV)
        if not text:
            raise RuntimeError(f"${SETTINGS_ENV} is not set: start the service with `facegate serve`")
        return cls.from_json(text)


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only (127.0.0.0/8, ::1, localhost)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False

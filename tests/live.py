"""Real processes for end-to-end tests: uvicorn and a Celery worker against the test database."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


def platforms_cache() -> Path:
    """Where the virtualenvs of real platforms (Phoenix, MLflow) are kept between runs."""
    default = Path.home() / ".cache" / "untrace-platforms"
    return Path(os.environ.get("UNTRACE_PLATFORMS_CACHE", default))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stack_env(*, redis_url: str, database_url: str | None = None) -> dict[str, str]:
    """Production-like settings pointed at the (committed) test database."""
    db = connection.settings_dict
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UNTRACE_", "DJANGO_", "DEBUG"))}
    env.update(
        DEBUG="false",
        DATABASE_URL=database_url or f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        REDIS_URL=redis_url,
        UNTRACE_SECRET_KEY="live-test-" + "s" * 60,
        UNTRACE_ENCRYPTION_KEYS=os.environ["UNTRACE_ENCRYPTION_KEYS"],
        UNTRACE_SECURE_SSL_REDIRECT="false",
        ALLOWED_HOSTS="127.0.0.1",
        DATABASE_CONN_MAX_AGE="0",
        LOG_LEVEL="WARNING",
    )
    return env


@contextmanager
def web_server(env: dict[str, str]) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "untrace.asgi:application",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        cwd=ROOT,
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, "web server exited"
            assert time.monotonic() < deadline, "web server did not start"
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@contextmanager
def celery_worker(env: dict[str, str], concurrency: int = 0) -> Iterator[subprocess.Popen]:
    """A worker: one process (solo pool), or a prefork pool of `concurrency` children."""
    pool = ["--pool", "prefork", "--concurrency", str(concurrency)] if concurrency else ["--pool", "solo"]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "untrace",
            "worker",
            *pool,
            "--queues",
            "ingest,route,deliver,maintenance",
            "--loglevel",
            "WARNING",
            "--without-mingle",
            "--without-gossip",
        ],
        cwd=ROOT,
        env=env,
    )
    try:
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@contextmanager
def celery_beat(env: dict[str, str], schedule: Path) -> Iterator[subprocess.Popen]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "untrace",
            "beat",
            "--schedule",
            str(schedule),
            "--loglevel",
            "WARNING",
        ],
        cwd=ROOT,
        env=env,
    )
    try:
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def wait_for(predicate: Callable[[], bool], timeout: float = 30.0, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False

"""`make run`: migrate, then web (ASGI), a Celery worker and beat in the foreground.

Ctrl-C stops all three; if one of them dies, the others are stopped too. When
REDIS_URL is not set and no Redis answers on the default address, Celery falls
back to kombu's file-system transport under var/broker (development only).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def _redis_answers(url: str) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 6379), 0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def environment(base: dict[str, str], *, redis_probe_url: str = DEFAULT_REDIS_URL) -> dict[str, str]:
    """The children's environment: development defaults, broker fallback, metrics folder."""
    env = dict(base)
    env.setdefault("DEBUG", "true")
    env.setdefault("PORT", "8000")
    var = Path(env.setdefault("UNTRACE_VAR_DIR", str(ROOT / "var")))
    var.mkdir(parents=True, exist_ok=True)
    no_broker_given = "REDIS_URL" not in env and "CELERY_BROKER_URL" not in env
    if no_broker_given and not _redis_answers(redis_probe_url):
        print(
            f"No Redis answers at {redis_probe_url}: using an embedded file broker in var/broker "
            "(development only; set REDIS_URL to use Redis).",
            flush=True,
        )
        env["CELERY_BROKER_URL"] = "filesystem://"
        for folder in ("queue", "control"):
            (var / "broker" / folder).mkdir(parents=True, exist_ok=True)
    if "REDIS_URL" not in env and "UNTRACE_CACHE_URL" not in env and not _redis_answers(redis_probe_url):
        env["UNTRACE_CACHE_URL"] = "locmem://"  # allauth's rate limits, per process
    metrics_dir = var / "prometheus"
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True)
    env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    return env


def main() -> int:
    env = environment(dict(os.environ))
    python = sys.executable
    subprocess.run([python, "manage.py", "migrate", "--noinput"], cwd=ROOT, env=env, check=True)
    host = env.get("HOST", "127.0.0.1")
    commands = {
        "web": [
            python,
            "-m",
            "uvicorn",
            "untrace.asgi:application",
            "--host",
            host,
            "--port",
            env["PORT"],
            "--no-access-log",
        ],
        "worker": [
            python,
            "-m",
            "celery",
            "-A",
            "untrace",
            "worker",
            "--loglevel",
            "INFO",
            "--queues",
            "ingest,route,deliver,maintenance",
            "--concurrency",
            "2",
        ],
        "beat": [
            python,
            "-m",
            "celery",
            "-A",
            "untrace",
            "beat",
            "--loglevel",
            "INFO",
            "--schedule",
            str(Path(env["UNTRACE_VAR_DIR"]) / "celerybeat-schedule"),
        ],
    }
    children = {name: subprocess.Popen(cmd, cwd=ROOT, env=env) for name, cmd in commands.items()}
    print(
        f"Untrace is starting at http://{host}:{env['PORT']} (Ctrl-C stops web, worker and beat)", flush=True
    )

    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    exit_code = 0
    while not stopping:
        for name, child in children.items():
            if child.poll() is not None:
                print(f"{name} exited with {child.returncode}; stopping the others.", flush=True)
                exit_code = child.returncode or 1
                stopping = True
        time.sleep(0.3)
    for child in children.values():
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 15
    for child in children.values():
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
    return exit_code


if __name__ == "__main__":
    sys.exit(main())

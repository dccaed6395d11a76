"""Shared set-up for benchmarks: a scratch PostgreSQL database, a project key, a web server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import psycopg

from tests import live

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN = os.environ.get("BENCH_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
DB_NAME = "untrace_bench"


def bench_env(database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UNTRACE_", "DJANGO_"))}
    env.update(
        DEBUG="false",
        DATABASE_URL=database_url,
        REDIS_URL=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14"),
        UNTRACE_SECRET_KEY="bench-" + "k" * 60,
        UNTRACE_ENCRYPTION_KEYS="YmVuY2gtZW5jcnlwdGlvbi1rZXktMDAwMDAwMDAwMDA=",
        UNTRACE_SECURE_SSL_REDIRECT="false",
        ALLOWED_HOSTS="127.0.0.1",
        LOG_LEVEL="WARNING",
        # Capacity is measured without plan limits (no per-key rate limit, no monthly
        # quota); bench_ratelimit.py measures the limiter's own cost.
        UNTRACE_DEFAULT_PLAN="enterprise",
    )
    return env


@contextmanager
def scratch_database():
    """A fresh, migrated database; yields (database_url, api_key)."""
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {DB_NAME}")
    url = PG_ADMIN.rsplit("/", 1)[0] + f"/{DB_NAME}"
    env = bench_env(url)
    try:
        subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
        out = subprocess.run(
            [
                sys.executable,
                "manage.py",
                "create_project",
                "--org",
                "Bench",
                "--project",
                "Bench",
                "--owner-email",
                "bench@example.com",
            ],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        yield url, json.loads(out)["api_key"]
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")


@contextmanager
def web_server(database_url: str):
    with live.web_server(bench_env(database_url)) as base:
        yield base

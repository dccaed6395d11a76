"""Warm API-key check cost against a baseline of the bare SHA-256 it must do.

Run: DATABASE_URL=postgres://postgres@127.0.0.1:5432/test .venv/bin/python bench/bench_key_auth.py
(uses the test settings; creates its own project and key, then removes them).
"""

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "untrace.settings_test")

import django

django.setup()

from django.conf import settings  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402

N = 200_000


def main() -> None:
    setup_test_environment()
    from django.test.utils import get_runner

    runner = get_runner(settings)(verbosity=0)
    old = runner.setup_databases()
    try:
        from apps.keys.auth import authenticate_key
        from apps.keys.services import hash_secret
        from tests.factories import ApiKeyFactory

        key = ApiKeyFactory()
        settings.UNTRACE_KEY_LAST_USED_INTERVAL = 3600
        authenticate_key(key.secret, client_ip="127.0.0.1", scope="ingest")  # warm

        started = time.perf_counter()
        for _ in range(N):
            hash_secret(key.secret)
        baseline = (time.perf_counter() - started) / N

        started = time.perf_counter()
        for _ in range(N):
            authenticate_key(key.secret, client_ip="127.0.0.1", scope="ingest")
        warm = (time.perf_counter() - started) / N

        print(f"sha256 alone:        {baseline * 1e6:7.2f} µs")
        print(f"warm authenticate:   {warm * 1e6:7.2f} µs  ({warm / baseline:.1f}x the bare hash)")
    finally:
        runner.teardown_databases(old)


if __name__ == "__main__":
    main()

"""`make run`'s launcher, started for real on a free port with nothing but SQLite and files."""

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.live import wait_for
from untrace.devstack import environment

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_falls_back_to_the_file_broker_only_when_no_redis_answers(tmp_path):
    base = {"UNTRACE_VAR_DIR": str(tmp_path)}
    fallback = environment(base, redis_probe_url="redis://127.0.0.1:1/0")
    assert fallback["CELERY_BROKER_URL"] == "filesystem://"
    assert (tmp_path / "broker" / "queue").is_dir()
    assert "CELERY_BROKER_URL" not in environment(base)  # the local Redis answers
    given = environment(
        {**base, "REDIS_URL": "redis://127.0.0.1:1/0"}, redis_probe_url="redis://127.0.0.1:1/0"
    )
    assert "CELERY_BROKER_URL" not in given  # an explicit REDIS_URL is never second-guessed
    assert Path(fallback["PROMETHEUS_MULTIPROC_DIR"]).is_dir()


def test_run_serves_signup_and_stops_everything_on_ctrl_c(tmp_path):
    port = _free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DEBUG", "UNTRACE_", "DATABASE_URL", "REDIS_URL", "DJANGO_"))
    }
    env.update(
        PORT=str(port),
        UNTRACE_VAR_DIR=str(tmp_path),
        CELERY_BROKER_URL="filesystem://",
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
    )
    for folder in ("queue", "control"):
        (tmp_path / "broker" / folder).mkdir(parents=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", "untrace.devstack"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"{base}/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "web never became ready"
            assert proc.poll() is None, proc.stdout.read()
            time.sleep(0.5)
        with httpx.Client(base_url=base, timeout=10) as http:
            page = http.get("/accounts/signup/")
            assert page.status_code == 200
            token = http.cookies["csrftoken"]
            signup = http.post(
                "/accounts/signup/",
                data={
                    "email": "first@example.com",
                    "password1": "a-long-enough-passphrase",
                    "password2": "a-long-enough-passphrase",
                    "csrfmiddlewaretoken": token,
                },
                headers={"Referer": f"{base}/accounts/signup/"},
            )
            assert signup.status_code == 302
            home = http.get("/", follow_redirects=True)
            assert "Get your first trace delivered" in home.text

        # A span in through the ingest fast path, stored in SQLite, routed by the
        # worker over the file broker, read back through Django.
        created = subprocess.run(
            [
                sys.executable,
                "manage.py",
                "create_project",
                "--org",
                "Dev",
                "--project",
                "Local",
                "--owner-email",
                "dev@example.com",
            ],
            cwd=ROOT,
            env={**env, "DEBUG": "true"},
            capture_output=True,
            text=True,
            check=True,
        )
        key = json.loads(created.stdout)["api_key"]
        headers = {"X-Untrace-Key": key}
        span = {
            "id": "dev-1",
            "model": "gpt-4o-mini",
            "request": {"prompt": "hello"},
            "response": {"content": "hi"},
        }
        assert httpx.post(f"{base}/v1/traces", json=span, headers=headers, timeout=10).status_code == 202
        listed = httpx.get(f"{base}/v1/traces", headers=headers, timeout=10).json()["results"]
        assert [s["id"] for s in listed] == ["dev-1"]
        assert listed[0]["provider"] == "openai"

        def routed() -> bool:
            with sqlite3.connect(tmp_path / "db.sqlite3") as db:
                return db.execute("SELECT routed_at FROM traces_ingestbatch").fetchone()[0] is not None

        assert wait_for(routed, timeout=30)
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert "celery@" in out and "ready" in out

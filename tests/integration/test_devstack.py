"""`make run`'s launcher, started for real on a free port with nothing but SQLite and files."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

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
            assert "API keys" in home.text
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert "celery@" in out and "ready" in out

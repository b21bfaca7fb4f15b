"""Heroku Redis speaks TLS (`rediss://`) with a self-signed certificate: broker and result backend must
both connect. Checked on the configuration, then end to end against a real TLS Redis started here
(redis-server's --tls-port, with a certificate made by openssl for the test)."""
from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.config import load_settings
from tests.conftest import free_port, wait_for
from worker.celery_app import celery_config, create_celery

URL = "rediss://:secret@redis.example.com:6380/0"


def test_rediss_url_gives_tls_without_certificate_check_to_broker_and_backend() -> None:
    config = celery_config(load_settings({"REDIS_URL": URL, "SECRET_KEY": "k"}))
    assert config["broker_url"] == URL and config["result_backend"] == URL
    assert config["broker_use_ssl"] == {"ssl_cert_reqs": ssl.CERT_NONE}
    assert config["redis_backend_use_ssl"] == {"ssl_cert_reqs": ssl.CERT_NONE}


def test_plain_redis_url_gets_no_tls_options() -> None:
    config = celery_config(load_settings({"REDIS_URL": "redis://localhost:6379/0", "SECRET_KEY": "k"}))
    assert config["broker_use_ssl"] is None and config["redis_backend_use_ssl"] is None


def test_celery_builds_a_tls_result_backend_from_the_rediss_url() -> None:
    # Celery refuses a rediss:// backend URL without ssl_cert_reqs unless the backend options carry it.
    app = create_celery(load_settings({"REDIS_URL": URL, "SECRET_KEY": "k"}))
    params = app.backend.connparams
    assert params["connection_class"].__name__ == "SSLConnection"
    assert params["ssl_cert_reqs"] == ssl.CERT_NONE
    assert (params["host"], params["port"], params["password"]) == ("redis.example.com", 6380, "secret")


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[str]:
    """A TLS-only redis-server on a free port with a fresh self-signed certificate; yields its rediss:// URL."""
    if not shutil.which("redis-server") or not shutil.which("openssl"):
        pytest.skip("redis-server and openssl are needed for a TLS Redis")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-keyout", str(tmp_path / "key.pem"), "-out", str(tmp_path / "cert.pem")],
                   check=True, capture_output=True)
    port = free_port()
    log = open(tmp_path / "redis.log", "wb")
    server = subprocess.Popen(
        ["redis-server", "--port", "0", "--tls-port", str(port), "--tls-cert-file", str(tmp_path / "cert.pem"),
         "--tls-key-file", str(tmp_path / "key.pem"), "--tls-auth-clients", "no", "--save", "", "--appendonly", "no",
         "--dir", str(tmp_path)], stdout=log, stderr=subprocess.STDOUT)

    def listening() -> bool:
        if server.poll() is not None:
            raise AssertionError((tmp_path / "redis.log").read_text())
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", port)) == 0

    try:
        wait_for(listening, 15, "the TLS Redis to listen")
        yield f"rediss://127.0.0.1:{port}/0"
    finally:
        server.terminate()
        server.wait(10)
        log.close()


@pytest.mark.slow
def test_a_task_round_trips_through_a_tls_redis_broker_and_backend(make_env, start_worker, tls_redis: str) -> None:
    env = make_env()
    env.redis_url = tls_redis
    env.activate()
    start_worker(env)
    from worker.celery_app import celery_app

    result = celery_app.send_task("tumorscreen.screening.ping", args=["over tls"])
    assert result.get(timeout=60) == "over tls"

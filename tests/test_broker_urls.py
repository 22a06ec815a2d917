"""Broker URLs: TLS verified by default, credentials masked, Sentinel for real."""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from producer.demo import start_worker, stop_workers, wait_registered
from producer.embedded_redis import EmbeddedRedis, find_redis_server
from tests.support import condafactory as cf
from tests.support import lockfiles
from tests.support.tls_proxy import TlsEndpoint, tls_proxy
from worker.broker import BrokerError, BrokerURL


def test_rediss_verifies_certificates_by_default() -> None:
    url = BrokerURL.parse("rediss://:pw@redis.example.invalid:6380/0")
    assert url.celery_options()["broker_use_ssl"] == {"ssl_cert_reqs": ssl.CERT_REQUIRED}
    pool_kwargs = url.client().connection_pool.connection_kwargs
    assert pool_kwargs["ssl_cert_reqs"] == "required"


def test_rediss_can_opt_out_only_explicitly() -> None:
    url = BrokerURL.parse("rediss://redis.example.invalid:6380/0?ssl_cert_reqs=none")
    assert url.celery_options()["broker_use_ssl"] == {"ssl_cert_reqs": ssl.CERT_NONE}


def test_credentials_are_masked() -> None:
    url = BrokerURL.parse("redis://admin:hunter2@queue:6379/0")
    assert "hunter2" not in url.masked() and "queue:6379" in url.masked()
    sentinel = BrokerURL.parse("sentinel://:pw1@s1:26379;sentinel://:pw2@s2:26379")
    assert "pw1" not in sentinel.masked() and "pw2" not in sentinel.masked()


@pytest.mark.parametrize("url", ["http://x", "rediscluster://x:1", "amqp://guest@x//"])
def test_unsupported_schemes_are_refused(url: str) -> None:
    with pytest.raises(BrokerError, match="unsupported broker URL scheme"):
        BrokerURL.parse(url)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def sentinel(tmp_path: Path) -> Iterator[str]:
    """A real Redis master (TCP) watched by a real Redis Sentinel; yields the sentinel URL."""
    with EmbeddedRedis(tcp=True) as master:
        port = free_port()
        conf = tmp_path / "sentinel.conf"
        conf.write_text(
            f"port {port}\nbind 127.0.0.1\ndir {tmp_path}\n"
            f"sentinel monitor lsmaster 127.0.0.1 {master.port} 1\n"
        )
        proc = subprocess.Popen(
            [str(find_redis_server()), str(conf), "--sentinel"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            url = f"sentinel://127.0.0.1:{port}"
            deadline = time.monotonic() + 15
            while True:
                try:
                    BrokerURL.parse(url, "lsmaster").ping(timeout=1)
                    break
                except BrokerError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
            yield url
        finally:
            proc.terminate()
            proc.wait(10)


def audit_one_worker(
    url: str, master_name: str | None, tmp_path: Path, channel: cf.Channel
) -> None:
    """A real worker and a real `lockstep check` through `url`; the host must be OK."""
    prefix = tmp_path / "env"
    cf.install_prefix(channel, cf.CLEAN_SPECS, prefix)
    lock = tmp_path / "conda-lock.yml"
    lock.write_text(lockfiles.conda_lock({"linux-64": prefix}))
    broker = BrokerURL.parse(url, master_name)
    naming = ("--master-name", master_name) if master_name else ()
    log = tmp_path / "w.log"
    proc = start_worker(broker, "one", {"prod": prefix}, log, naming)
    try:
        wait_registered(broker, {"one"}, [proc], [log], timeout=90)
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "producer.cli",
                "check",
                "--broker",
                url,
                *naming,
                "--lock",
                str(lock),
                "--host",
                "one",
                "--format",
                "json",
                "--timeout",
                "20",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        stop_workers([proc])
    assert result.returncode == 0, result.stderr + log.read_text(errors="replace")[-2000:]
    assert json.loads(result.stdout)["hosts"][0]["status"] == "OK"


def test_fleet_check_through_sentinel(
    sentinel: str, tmp_path: Path, conda_channel: cf.Channel
) -> None:
    audit_one_worker(sentinel, "lsmaster", tmp_path, conda_channel)


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[TlsEndpoint]:
    with EmbeddedRedis() as server:
        assert server.socket_path is not None
        with tls_proxy(server.socket_path, tmp_path) as endpoint:
            yield endpoint


def test_rediss_refuses_an_unknown_certificate_by_default(tls_redis: TlsEndpoint) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "producer.cli", "hosts", "--broker", tls_redis.url()],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 4
    assert "certificate verify failed" in result.stderr.lower()


def test_fleet_check_over_verified_tls(
    tls_redis: TlsEndpoint, tmp_path: Path, conda_channel: cf.Channel
) -> None:
    audit_one_worker(
        tls_redis.url(f"ssl_ca_certs={tls_redis.ca_file}"), None, tmp_path, conda_channel
    )

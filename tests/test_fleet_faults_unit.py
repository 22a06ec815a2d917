"""Focused fault tests of the fleet protocol against real Redis servers we start and stop.

The worker side runs the real `Verifier` on a thread that takes the task off the host's
queue exactly as kombu would deliver it (base64 body, our codec), so a Redis restart hits
the same code a `lockstep worker` runs; the Celery layer around it is tested elsewhere.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from producer.embedded_redis import find_redis_server
from producer.fleet import MAX_VERDICT_BYTES, FleetCheck, Target
from tests.support import condafactory as cf
from tests.support import lockfiles
from worker import codec
from worker.broker import BrokerURL
from worker.config import WorkerConfig
from worker.models import HostReport, Status
from worker.registry import lock_key, queue_name
from worker.service import (
    MAX_LOCK_BYTES,
    MAX_LOCK_DECODED,
    Verifier,
    bell_key,
    pack_reply,
    reply_key,
    unpack_reply,
)
from worker.signing import SIGNATURE_HEADER, FleetKey, sign, verify
from worker.snapshot.conda_meta import CondaMetaSource

KEY = FleetKey(b"0123456789abcdef-fleet-key")


class RestartableRedis:
    """redis-server on a fixed unix socket that a test may SIGTERM and start again."""

    def __init__(self, directory: Path, *, aof: bool) -> None:
        self.directory = directory
        self.socket = directory / "redis.sock"
        self.config = directory / "redis.conf"
        self.config.write_text(
            "\n".join(
                [
                    "port 0",
                    f'unixsocket "{self.socket}"',
                    "unixsocketperm 700",
                    'save ""',
                    f"appendonly {'yes' if aof else 'no'}",
                    "appendfsync always",
                    f'dir "{directory}"',
                    f'logfile "{directory / "redis.log"}"',
                ]
            )
            + "\n"
        )
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [str(find_redis_server()), str(self.config)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        end = time.monotonic() + 15
        while time.monotonic() < end:
            try:
                redis.Redis(unix_socket_path=str(self.socket)).ping()
                return
            except (redis.RedisError, OSError):
                time.sleep(0.05)
        raise RuntimeError("redis-server did not come up")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(15)
        self.process = None


@pytest.fixture
def restartable(tmp_path: Path) -> Iterator[RestartableRedis]:
    server = RestartableRedis(tmp_path, aof=True)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def make_verifier(client: redis.Redis, prefix: Path, host: str = "w", **kw: Any) -> Verifier:
    config = WorkerConfig(host=host, environments={"prod": str(prefix)})
    return Verifier(config, client, CondaMetaSource(), platform="linux-64", **kw)


def replies(client: redis.Redis, audit: str) -> list[tuple[str, str, HostReport]]:
    items: list[bytes] = client.lrange(reply_key(audit), 0, -1)  # type: ignore[assignment]
    out = []
    for item in items:
        host, signature, payload = unpack_reply(item)
        out.append((host, signature, HostReport.model_validate(codec.decode(payload))))
    return out


def store_lock(client: redis.Redis, data: bytes) -> str:
    digest = hashlib.sha256(data).hexdigest()
    client.set(lock_key(digest), data)
    return digest


def serve_one(client: redis.Redis, verifier: Verifier, timeout: float = 30) -> dict[str, Any]:
    """Take one task off the verifier's host queue, as kombu would, and run it."""
    item: Any = client.brpop([queue_name(verifier.config.host)], timeout=timeout)
    assert item is not None, "no task arrived"
    message = json.loads(item[1])
    raw = base64.b64decode(message["body"])
    _, kwargs, _ = codec.decode_value(raw)
    verifier.handle(**kwargs)
    return {"headers": message["headers"], "raw": raw, "kwargs": kwargs}


# -- every error path of the verifier gives a valid verdict ---------------------------------


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        ({"locks": {"linux-64": "0" * 64}, "env": ["prod"]}, "'env' must be a string"),
        ({"locks": {"linux-64": "0" * 64}, "env": {"a": 1}}, "'env' must be a string"),
        ({"locks": {"linux-64": "0" * 64}, "options": ["strict"]}, "'options' must be a map"),
        ({"locks": {"linux-64": "0" * 64}, "options": "x"}, "'options' must be a map"),
        ({"locks": ["0" * 64]}, "'locks' must be a map"),
        ({"locks": "0" * 64}, "'locks' must be a map"),
        ({"locks": None}, "'locks' must be a map"),
        ({"locks": {}}, "an empty map"),
        ({"locks": {"linux-64": 7}}, "'locks' must map platform names"),
        ({"locks": {"linux-64": "0" * 64}, "options": {"strict": "yes"}}, "'strict'"),
        ({"locks": {"linux-64": "0" * 64}, "options": {"ignore": 3}}, "'ignore'"),
        ({"locks": {"linux-64": "0" * 64}, "options": {"ignore_build": [1]}}, "'ignore_build'"),
        ({"locks": {"linux-64": "0" * 64}, "deadline": "soon"}, "not in the broker"),
        ({"locks": {"linux-64": "0" * 64}, "deadline": float("nan")}, "not in the broker"),
        ({"locks": {"osx-arm64": "0" * 64}}, "lock has no packages for platform linux-64"),
    ],
)
def test_every_bad_task_gets_a_valid_error_verdict(
    redis_client: redis.Redis, make_prefix: cf.PrefixFactory, kwargs: dict[str, Any], expected: str
) -> None:
    verifier = make_verifier(redis_client, make_prefix())
    verifier.handle("audit-bad", **kwargs)
    ((host, _, report),) = replies(redis_client, "audit-bad")
    assert host == "w" and report.host == "w"
    assert report.status is Status.ERROR
    assert expected in (report.error or "")
    assert report.instance == verifier.instance
    assert redis_client.llen(bell_key("audit-bad")) == 1


def test_answer_error_and_unusable_audit_ids(
    redis_client: redis.Redis, make_prefix: cf.PrefixFactory
) -> None:
    verifier = make_verifier(redis_client, make_prefix())
    verifier.answer_error("audit-poison", "poison message: not JSON")
    verifier.answer_error("../evil", "dropped")
    verifier.handle(["not", "an", "id"], {"linux-64": "0" * 64})
    ((_, _, report),) = replies(redis_client, "audit-poison")
    assert report.status is Status.ERROR and report.error == "poison message: not JSON"
    assert redis_client.keys("*evil*") == []


def test_platform_comes_from_the_environment_and_star_fits_all(
    redis_client: redis.Redis, make_prefix: cf.PrefixFactory, tmp_path: Path
) -> None:
    from producer.locks.detect import load_lock

    prefix = make_prefix()
    path = tmp_path / "conda-lock.yml"
    path.write_text(lockfiles.conda_lock({"linux-64": prefix}))
    data = codec.encode(load_lock(path, platform="linux-64").model_dump(mode="json"))
    digest = store_lock(redis_client, data)
    # registered as osx-arm64, but the environment's own subdir (linux-64) decides
    verifier = Verifier(
        WorkerConfig(host="w", environments={"prod": str(prefix)}),
        redis_client,
        CondaMetaSource(),
        platform="osx-arm64",
    )
    ok = verifier.verify({"osx-arm64": "0" * 64, "linux-64": digest}, None, {})
    assert ok.status is Status.OK and ok.platform == "linux-64"
    assert verifier.verify({"*": digest}, None, {}).status is Status.OK
    wrong = verifier.verify({"osx-arm64": digest}, None, {})
    assert wrong.status is Status.ERROR
    assert wrong.error == "lock has no packages for platform linux-64; the lock has: osx-arm64"


# -- lock fetch: caps and remembered failures -----------------------------------------------


def test_lock_caps_and_a_bomb_costs_one_decode(
    redis_client: redis.Redis, make_prefix: cf.PrefixFactory
) -> None:
    verifier = make_verifier(redis_client, make_prefix())
    bomb = codec.encode({"pad": "a" * (MAX_LOCK_DECODED + 1)}, quality=5)
    assert len(bomb) < 64 * 1024  # small on the wire, large inflated
    digest = store_lock(redis_client, bomb)
    first = verifier.verify({"linux-64": digest}, None, {})
    assert first.status is Status.ERROR and "inflates beyond" in (first.error or "")
    redis_client.delete(lock_key(digest))  # a second decode would now say "not in the broker"
    again = verifier.verify({"linux-64": digest}, None, {})
    assert again.error == first.error
    invalid = store_lock(redis_client, codec.encode({"not": "a lock"}))
    assert "unusable" in (verifier.verify({"linux-64": invalid}, None, {}).error or "")
    huge = b"\xb1" + os.urandom(MAX_LOCK_BYTES + 1)
    big = store_lock(redis_client, huge)
    assert "over the" in (verifier.verify({"linux-64": big}, None, {}).error or "")


# -- broker faults ------------------------------------------------------------------------


def test_every_client_retries() -> None:
    client = BrokerURL.parse("redis://127.0.0.1:1/0").client()
    assert client.get_retry() is not None
    kwargs = client.connection_pool.connection_kwargs
    assert redis.ConnectionError in kwargs["retry_on_error"]
    sentinel = BrokerURL.parse("sentinel://:pw@127.0.0.1:1/0").client()
    assert sentinel.get_retry() is not None


def test_a_verdict_made_while_redis_is_down_is_delivered_when_it_returns(
    restartable: RestartableRedis, make_prefix: cf.PrefixFactory
) -> None:
    prefix = make_prefix()
    client = BrokerURL.parse(restartable.url).client()
    verifier = make_verifier(client, prefix)
    restartable.stop()
    worker = threading.Thread(
        target=verifier.handle,
        args=("audit-away", {"linux-64": "0" * 64}, None, {}, time.time() + 60),
    )
    worker.start()
    time.sleep(1.5)  # the push is failing and retrying now
    restartable.start()
    worker.join(60)
    assert not worker.is_alive()
    ((host, _, report),) = replies(client, "audit-away")
    assert host == "w" and report.status is Status.ERROR


def test_collection_survives_a_redis_restart_mid_audit(
    restartable: RestartableRedis, make_prefix: cf.PrefixFactory, tmp_path: Path
) -> None:
    prefix = make_prefix()
    lock = tmp_path / "conda-lock.yml"
    lock.write_text(lockfiles.conda_lock({"linux-64": prefix}))
    broker = BrokerURL.parse(restartable.url)
    client = broker.client()
    first, second = make_verifier(client, prefix, "h1"), make_verifier(client, prefix, "h2")

    def worker() -> None:
        serve_one(client, first)
        time.sleep(0.5)
        restartable.stop()  # mid-audit: h2's task waits in the AOF
        time.sleep(2)
        restartable.start()
        serve_one(client, second)

    thread = threading.Thread(target=worker)
    thread.start()
    check = FleetCheck(broker, timeout=40)
    outcome = check.run([Target("h1", lock), Target("h2", lock)])
    thread.join(30)
    assert {r.host: r.status for r in outcome.reports} == {"h1": Status.OK, "h2": Status.OK}
    assert outcome.infrastructure_error is None


def test_redis_gone_until_the_deadline_is_broker_lost(
    restartable: RestartableRedis, make_prefix: cf.PrefixFactory, tmp_path: Path
) -> None:
    prefix = make_prefix()
    lock = tmp_path / "conda-lock.yml"
    lock.write_text(lockfiles.conda_lock({"linux-64": prefix}))
    broker = BrokerURL.parse(restartable.url)
    client = broker.client()
    verifier = make_verifier(client, prefix, "h1")

    def worker() -> None:
        serve_one(client, verifier)
        restartable.stop()

    thread = threading.Thread(target=worker)
    thread.start()
    outcome = FleetCheck(broker, timeout=6).run([Target("h1", lock), Target("h2", lock)])
    thread.join(30)
    assert {r.host: r.status for r in outcome.reports} == {
        "h1": Status.OK,
        "h2": Status.UNREACHABLE,
    }
    assert (outcome.infrastructure_error or "").startswith("broker lost for ")


# -- verdict collection: size checked before a reply is held -------------------------------


def test_oversized_and_garbage_replies_mark_only_their_host(
    redis_client: redis.Redis, redis_server: Any, make_prefix: cf.PrefixFactory, tmp_path: Path
) -> None:
    prefix = make_prefix()
    lock = tmp_path / "conda-lock.yml"
    lock.write_text(lockfiles.conda_lock({"linux-64": prefix}))
    broker = BrokerURL.parse(redis_server.url)
    check = FleetCheck(broker, timeout=20)
    audit = check.audit_id
    redis_client.rpush(
        reply_key(audit), pack_reply("big", b"\xb1" + b"x" * (MAX_VERDICT_BYTES + 2048))
    )
    redis_client.rpush(reply_key(audit), pack_reply("junk", b"\xb1garbage"))
    redis_client.rpush(reply_key(audit), b"no host at all")
    verifier = make_verifier(redis_client, prefix, "fine")
    thread = threading.Thread(target=serve_one, args=(redis_client, verifier))
    thread.start()
    outcome = check.run([Target(h, lock) for h in ("big", "junk", "fine")])
    thread.join(30)
    by_host = {r.host: r for r in outcome.reports}
    assert by_host["fine"].status is Status.OK
    assert by_host["big"].status is Status.ERROR and "exceeds the cap" in (
        by_host["big"].error or ""
    )
    assert by_host["junk"].status is Status.ERROR and "malformed verdict" in (
        by_host["junk"].error or ""
    )


# -- signing ------------------------------------------------------------------------------


def test_signed_tasks_and_verdicts(
    redis_client: redis.Redis, redis_server: Any, make_prefix: cf.PrefixFactory, tmp_path: Path
) -> None:
    prefix = make_prefix()
    lock = tmp_path / "conda-lock.yml"
    lock.write_text(lockfiles.conda_lock({"linux-64": prefix}))
    broker = BrokerURL.parse(redis_server.url)
    signed = make_verifier(redis_client, prefix, "signed", key=KEY)
    unsigned = make_verifier(redis_client, prefix, "unsigned")
    forged = make_verifier(redis_client, prefix, "forged", key=FleetKey(b"another-key-0123456789"))
    seen: list[dict[str, Any]] = []

    def workers() -> None:
        for verifier in (signed, unsigned, forged):
            seen.append(serve_one(redis_client, verifier))

    thread = threading.Thread(target=workers)
    thread.start()
    outcome = FleetCheck(broker, timeout=8, key=KEY).run(
        [Target(h, lock) for h in ("signed", "unsigned", "forged")]
    )
    thread.join(30)
    by_host = {r.host: r for r in outcome.reports}
    assert by_host["signed"].status is Status.OK
    assert by_host["unsigned"].status is Status.ERROR
    assert "verdict signature invalid: unsigned" in (by_host["unsigned"].error or "")
    assert "verdict signature invalid: signed with unknown key id" in (
        by_host["forged"].error or ""
    )
    for task in seen:  # the producer signed every task body it published
        assert verify(KEY, task["raw"], task["headers"][SIGNATURE_HEADER]) is None
    assert sign(KEY, b"x") != sign(FleetKey(b"another-key-0123456789"), b"x")


def test_without_a_key_tasks_carry_no_signature(
    redis_client: redis.Redis, redis_server: Any, make_prefix: cf.PrefixFactory, tmp_path: Path
) -> None:
    prefix = make_prefix()
    lock = tmp_path / "conda-lock.yml"
    lock.write_text(lockfiles.conda_lock({"linux-64": prefix}))
    verifier = make_verifier(redis_client, prefix, "plain")
    seen: list[dict[str, Any]] = []
    thread = threading.Thread(target=lambda: seen.append(serve_one(redis_client, verifier)))
    thread.start()
    outcome = FleetCheck(BrokerURL.parse(redis_server.url), timeout=20).run([Target("plain", lock)])
    thread.join(30)
    assert outcome.reports[0].status is Status.OK
    assert SIGNATURE_HEADER not in seen[0]["headers"]
    assert set(seen[0]["kwargs"]) == {"audit", "locks", "env", "options", "deadline"}


def test_cli_check_all_after_a_restart_without_persistence_exits_3(
    tmp_path: Path, make_prefix: cf.PrefixFactory
) -> None:
    server = RestartableRedis(tmp_path, aof=False)
    server.start()
    try:
        from producer import known_hosts

        client = BrokerURL.parse(server.url).client()
        env = {**os.environ, "LOCKSTEP_STATE_DIR": str(tmp_path / "state")}
        known_hosts.remember(client, {"web-1": time.time() - 60, "web-2": time.time()}, env)
        server.stop()
        server.start()  # every key is gone; the local state file remembers the fleet
        lock = tmp_path / "conda-lock.yml"
        lock.write_text(lockfiles.conda_lock({"linux-64": make_prefix()}))
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "producer.cli",
                "check",
                "--broker",
                server.url,
                "--lock",
                str(lock),
                "--all",
                "--timeout",
                "2",
                "--format",
                "json",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env=env,
        )
    finally:
        server.stop()
    assert result.returncode == 3, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    warnings = [line for line in result.stderr.splitlines() if "known from earlier audits" in line]
    assert len(warnings) == 1 and "2 host(s)" in warnings[0]
    hosts = {h["host"]: h for h in json.loads(result.stdout)["hosts"]}
    assert {h: r["status"] for h, r in hosts.items()} == {
        "web-1": "UNREACHABLE",
        "web-2": "UNREACHABLE",
    }
    assert "not registered; last seen" in hosts["web-1"]["error"]
    assert "(known from earlier audits)" in hosts["web-1"]["error"]


@pytest.mark.skipif(
    "instance" not in __import__("worker.registry").registry.HostInfo.model_fields,
    reason="the registry does not record worker instances yet",
)
def test_a_verdict_from_a_stale_instance_is_set_aside(
    redis_client: redis.Redis, redis_server: Any, make_prefix: cf.PrefixFactory, tmp_path: Path
) -> None:
    from worker.registry import HostInfo, register

    prefix = make_prefix()
    lock = tmp_path / "conda-lock.yml"
    lock.write_text(lockfiles.conda_lock({"linux-64": prefix}))
    stale = make_verifier(redis_client, prefix, "dup")
    live = make_verifier(redis_client, prefix, "dup")
    info = HostInfo.model_validate(
        {"host": "dup", "platform": "linux-64", "instance": live.instance}
    )
    register(redis_client, info)

    def workers() -> None:
        task = serve_one(redis_client, stale)  # the old process answers first ...
        live.handle(**task["kwargs"])  # ... then the registered one

    thread = threading.Thread(target=workers)
    thread.start()
    (report,) = (
        FleetCheck(BrokerURL.parse(redis_server.url), timeout=20).run([Target("dup", lock)]).reports
    )
    thread.join(30)
    assert report.status is Status.OK and report.instance == live.instance
    assert any("stale worker instance" in w for w in report.warnings)

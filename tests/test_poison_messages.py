"""Poison messages on a live worker's queue: quarantined and answered, never fatal.

Two real `lockstep worker` processes on a Redis we start (over TCP, so the guarded transport
is chosen by class; the unix-socket alias path is what every other fleet test uses): one
without a fleet key, one with. Each poison item is pushed onto the worker's own queue; the
worker must stay alive, file the item in `lockstep:deadletter:<host>` with a reason, answer
ERROR for the audit when its id was readable, and then answer a normal audit correctly.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import brotli
import msgpack
import pytest
import redis

from producer.demo import start_worker, stop_workers, wait_registered
from producer.embedded_redis import EmbeddedRedis
from producer.publish import publish_tasks
from tests.support import condafactory as cf
from tests.support import lockfiles
from worker import codec, deadletter
from worker.app import make_app
from worker.broker import BrokerURL
from worker.registry import queue_name
from worker.service import reply_key, unpack_reply
from worker.signing import SIGNATURE_HEADER, FleetKey, sign
from worker.task_body import MAX_TASK_BODY_BYTES, TaskBodyError, check_shape, decode_body
from worker.transport import Refused, screen

OPEN, KEYED = "poison-open", "poison-keyed"
KEY = FleetKey(b"poison-test-fleet-key-0123456789")
OTHER_KEY = FleetKey(b"some-other-fleet-key-9876543210")
DIGEST = "0" * 64


@dataclass
class Poisoned:
    broker: BrokerURL
    client: redis.Redis
    lock: Path
    key_file: Path
    procs: dict[str, subprocess.Popen[bytes]]
    logs: dict[str, Path]


@pytest.fixture(scope="module")
def poisoned(
    tmp_path_factory: pytest.TempPathFactory, conda_channel: cf.Channel
) -> Iterator[Poisoned]:
    root = tmp_path_factory.mktemp("poison")
    prefix = root / "clean"
    cf.install_prefix(conda_channel, cf.CLEAN_SPECS, prefix)
    lock = root / "conda-lock.yml"
    lock.write_text(lockfiles.conda_lock({"linux-64": prefix}))
    key_file = root / "fleet.key"
    key_file.write_bytes(KEY.secret)
    server = EmbeddedRedis(tcp=True).start()
    broker = BrokerURL.parse(server.url)
    procs: dict[str, subprocess.Popen[bytes]] = {}
    logs = {host: root / f"{host}.log" for host in (OPEN, KEYED)}
    try:
        procs[OPEN] = start_worker(broker, OPEN, {"prod": prefix}, logs[OPEN])
        extra = ("--fleet-key-file", str(key_file))
        procs[KEYED] = start_worker(broker, KEYED, {"prod": prefix}, logs[KEYED], extra)
        wait_registered(broker, {OPEN, KEYED}, list(procs.values()), list(logs.values()), 90)
        yield Poisoned(broker, broker.client(), lock, key_file, procs, logs)
    finally:
        stop_workers(list(procs.values()))
        server.stop()


def envelope(p: Poisoned, kwargs: dict[str, Any], key: FleetKey | None = None) -> dict[str, Any]:
    """A real producer envelope (publish_tasks), taken back off a scratch queue to edit."""
    expires = datetime.now(UTC) + timedelta(minutes=5)
    publish_tasks(p.client, make_app(p.broker), [("scratch", kwargs)], expires, key=key)
    item: Any = p.client.rpop("scratch")
    data: dict[str, Any] = json.loads(item)
    return data


def good_kwargs(audit: str, **changes: Any) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "audit": audit,
        "locks": {"linux-64": DIGEST},
        "env": None,
        "options": {},
        "deadline": time.time() + 60,
    }
    kwargs.update(changes)
    return kwargs


def with_body(env: dict[str, Any], raw: bytes) -> dict[str, Any]:
    return {**env, "body": base64.b64encode(raw).decode("ascii")}


def bomb() -> bytes:
    """~1 kB on the wire, 4 million empty maps once unpacked."""
    packed = msgpack.packb({"v": codec.SCHEMA_VERSION, "d": [[{}] * 4_000_000, {}, None]})
    compressed: bytes = brotli.compress(packed, quality=11)
    return codec.MAGIC + compressed


def wait_for(what: str, ready: Callable[[], bool], timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if ready():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def push_and_expect(
    p: Poisoned, host: str, item: bytes, reason: str, audit: str | None = None
) -> None:
    before = p.client.llen(deadletter.deadletter_key(host))
    p.client.lpush(queue_name(host), item)
    wait_for(
        f"a dead letter on {host}",
        lambda: p.client.llen(deadletter.deadletter_key(host)) > before,
    )
    newest = deadletter.entries(p.client, host, limit=1)[0]
    assert reason in newest.reason, newest.reason
    assert newest.head() == item[:64]
    assert newest.audit == audit
    if audit is not None:
        wait_for(f"an answer for {audit}", lambda: p.client.llen(reply_key(audit)) > 0)
        replies: Any = p.client.lrange(reply_key(audit), 0, -1)
        answered_host, _, payload = unpack_reply(replies[0])
        verdict = codec.decode(payload)
        assert answered_host == host
        assert verdict["status"] == "ERROR"
        assert "refused task" in verdict["error"] and reason in verdict["error"]
    assert p.procs[host].poll() is None, p.logs[host].read_text()[-2000:]


def audit_ok(p: Poisoned, host: str, *extra: str) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "producer.cli",
            "check",
            "--broker",
            p.broker.url,
            "--lock",
            str(p.lock),
            "--hosts",
            host,
            "--timeout",
            "60",
            "--format",
            "json",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    hosts = {h["host"]: h["status"] for h in json.loads(result.stdout)["hosts"]}
    assert hosts == {host: "OK"}


def new_audit() -> str:
    return uuid.uuid4().hex


def test_items_that_are_not_messages(poisoned: Poisoned) -> None:
    p = poisoned
    push_and_expect(p, OPEN, b"\xff\xfe not json at all", "not JSON")
    push_and_expect(p, OPEN, b"[1, 2, 3]", "JSON list, not a message envelope")
    push_and_expect(p, OPEN, b'{"body": "x", "headers": {}}', "lacks 'properties'")
    audit_ok(p, OPEN)


def test_bodies_of_the_wrong_shape_are_answered_with_error(poisoned: Poisoned) -> None:
    p = poisoned
    base = envelope(p, good_kwargs(new_audit()))
    audit = new_audit()
    as_map = with_body(base, codec.encode_value({"audit": audit}))
    push_and_expect(p, OPEN, json.dumps(as_map).encode(), "task body must be", audit)
    audit = new_audit()
    bad_embed = with_body(base, codec.encode_value([[], good_kwargs(audit), "embed"]))
    push_and_expect(p, OPEN, json.dumps(bad_embed).encode(), "embed must be a map", audit)
    garbage = with_body(base, b"\xb1 not brotli")
    push_and_expect(p, OPEN, json.dumps(garbage).encode(), "bad task body")
    audit = new_audit()
    env_list = envelope(p, good_kwargs(audit, env=["prod"]))
    push_and_expect(p, OPEN, json.dumps(env_list).encode(), "'env' must be a string", audit)
    audit_ok(p, OPEN)


def test_unknown_tasks_bombs_and_headers_celery_chokes_on(poisoned: Poisoned) -> None:
    p = poisoned
    base = envelope(p, good_kwargs(new_audit()))
    unknown = {**base, "headers": {**base["headers"], "task": "celery.evil"}}
    push_and_expect(p, OPEN, json.dumps(unknown).encode(), "unknown task 'celery.evil'")
    boom = with_body(base, bomb())
    assert len(json.dumps(boom)) < 4096
    push_and_expect(p, OPEN, json.dumps(boom).encode(), "bad task body")
    # passes the screen, then fails inside Celery's request: caught around the consumer
    audit = new_audit()
    odd = envelope(p, good_kwargs(audit))
    odd["headers"]["timelimit"] = "x"
    push_and_expect(p, OPEN, json.dumps(odd).encode(), "worker failed on message", audit)
    audit_ok(p, OPEN)


def test_a_keyed_worker_refuses_unsigned_and_badly_signed_tasks(poisoned: Poisoned) -> None:
    p = poisoned
    audit = new_audit()
    unsigned = json.dumps(envelope(p, good_kwargs(audit))).encode()
    push_and_expect(p, KEYED, unsigned, "unsigned message", audit)
    audit = new_audit()
    foreign = json.dumps(envelope(p, good_kwargs(audit), key=OTHER_KEY)).encode()
    push_and_expect(p, KEYED, foreign, "unknown key id", audit)
    audit = new_audit()
    forged = envelope(p, good_kwargs(audit), key=KEY)
    forged["headers"][SIGNATURE_HEADER] = f"{KEY.kid}:{'0' * 64}"
    push_and_expect(p, KEYED, json.dumps(forged).encode(), "bad signature", audit)
    audit_ok(p, KEYED, "--fleet-key-file", str(p.key_file))
    assert p.procs[OPEN].poll() is None


def test_hosts_and_dead_letters_commands_show_the_quarantine(poisoned: Poisoned) -> None:
    p = poisoned
    p.client.lpush(queue_name(OPEN), b"[]")
    wait_for("the item to be taken", lambda: p.client.llen(queue_name(OPEN)) == 0)
    wait_for("its dead letter", lambda: p.client.llen(deadletter.deadletter_key(OPEN)) > 0)
    cli = [sys.executable, "-m", "producer.cli"]
    hosts = subprocess.run(
        [*cli, "hosts", "--broker", p.broker.url, "--format", "json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert hosts.returncode == 0, hosts.stderr
    rows = {h["host"]: h for h in json.loads(hosts.stdout)}
    count = p.client.llen(deadletter.deadletter_key(OPEN))
    assert rows[OPEN]["dead_letters"] == count > 0
    assert rows[OPEN]["instance"]
    letters = subprocess.run(
        [*cli, "dead-letters", "--broker", p.broker.url, "--host", OPEN, "--format", "json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert letters.returncode == 0, letters.stderr
    entries = json.loads(letters.stdout)
    assert len(entries) == count
    assert entries[0]["reason"] and entries[0]["head"] == "[]"
    table = subprocess.run(
        [*cli, "dead-letters", "--broker", p.broker.url, "--host", OPEN, "--clear"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert table.returncode == 0, table.stderr
    assert "dead letter(s)" in table.stdout
    assert p.client.llen(deadletter.deadletter_key(OPEN)) == 0


# ------------------------------------------------------------------- pure functions


def test_screen_accepts_a_real_envelope_and_refuses_each_defect() -> None:
    raw = codec.encode_value([[], good_kwargs("a1"), None])
    good: dict[str, Any] = {
        "body": base64.b64encode(raw).decode(),
        "content-type": codec.CONTENT_TYPE,
        "headers": {"task": "lockstep.verify", "id": "t1"},
        "properties": {
            "delivery_tag": "d1",
            "body_encoding": "base64",
            "delivery_info": {"exchange": "", "routing_key": "q"},
        },
    }
    assert screen(json.dumps(good).encode(), None) == good
    signed = {**good, "headers": {**good["headers"], SIGNATURE_HEADER: sign(KEY, raw)}}
    assert screen(json.dumps(signed).encode(), KEY) == signed
    with pytest.raises(Refused, match="unsigned") as refused:
        screen(json.dumps(good).encode(), KEY)
    assert refused.value.audit == "a1"
    defects = {
        "delivery tag": {**good, "properties": {**good["properties"], "delivery_tag": 5}},
        "ISO time": {**good, "headers": {**good["headers"], "eta": "tomorrow"}},
        "content type": {**good, "content-type": "application/x-python-serialize"},
        "base64": {**good, "body": "***"},
    }
    for reason, item in defects.items():
        with pytest.raises(Refused, match=reason):
            screen(json.dumps(item).encode(), None)
    with pytest.raises(Refused, match="exceeds"):
        screen(b" " * (MAX_TASK_BODY_BYTES * 2), None)


def test_body_shape_is_checked_in_the_serializer() -> None:
    assert decode_body(codec.encode_value([[], {"a": 1}, None])) == [[], {"a": 1}, None]
    bads: list[object] = [{"a": 1}, [[], {}], [{}, {}, None], [[], [], None], [[], {}, 3]]
    for bad in bads:
        with pytest.raises(TaskBodyError):
            check_shape(bad)
    with pytest.raises(codec.CodecError):
        decode_body(bomb())


def test_kombu_reports_a_bad_body_as_decode_error() -> None:
    from kombu import serialization
    from kombu.exceptions import DecodeError

    codec.register_kombu_serializer(task_bodies=True)
    try:
        with pytest.raises(DecodeError):
            serialization.loads(  # type: ignore[no-untyped-call]
                codec.encode_value({"not": "a body"}),
                codec.CONTENT_TYPE,
                codec.CONTENT_ENCODING,
                accept=[codec.CONTENT_TYPE],
            )
    finally:
        codec.register_kombu_serializer()

"""A worker at rest must be cheap for Redis: 10,000 hosts share one server's client limit."""

from __future__ import annotations

import base64
import json
import time
import uuid
from pathlib import Path

import pytest

from producer.demo import start_worker, stop_workers, wait_registered
from producer.embedded_redis import EmbeddedRedis
from tests.support import condafactory as cf
from worker.broker import BrokerURL
from worker.deadletter import deadletter_key
from worker.registry import queue_name


@pytest.fixture
def lone_worker(tmp_path: Path, conda_channel: cf.Channel):  # type: ignore[no-untyped-def]
    prefix = tmp_path / "env"
    cf.install_prefix(conda_channel, cf.CLEAN_SPECS, prefix)
    with EmbeddedRedis() as server:
        broker = BrokerURL.parse(server.url)
        log = tmp_path / "worker.log"
        proc = start_worker(broker, "lone", {"prod": prefix}, log)
        try:
            wait_registered(broker, {"lone"}, [proc], [log], timeout=90)
            yield server, proc, log
        finally:
            stop_workers([proc])


def test_idle_worker_holds_at_most_three_connections(lone_worker) -> None:  # type: ignore[no-untyped-def]
    server, proc, _ = lone_worker
    client = server.client()
    time.sleep(4)  # past two registry refreshes: steady state
    clients = client.client_list()
    ours = client.client_id()
    worker_clients = [c for c in clients if int(c["id"]) != ours]
    assert proc.poll() is None
    print(f"idle worker connections: {len(worker_clients)}")
    assert 1 <= len(worker_clients) <= 3, worker_clients


def test_worker_refuses_pickle_and_json_messages(lone_worker) -> None:  # type: ignore[no-untyped-def]
    server, proc, log = lone_worker
    client = server.client()
    for content_type, body in (
        ("application/x-python-serialize", b"cos\nsystem\n(S'touch /tmp/pwned'\ntR."),
        ("application/json", json.dumps([[], {"audit": "x", "lock": "0" * 64}, {}]).encode()),
    ):
        message = {
            "body": base64.b64encode(body).decode(),
            "content-encoding": "binary",
            "content-type": content_type,
            "headers": {
                "lang": "py",
                "task": "lockstep.verify",
                "id": str(uuid.uuid4()),
                "retries": 0,
                "argsrepr": "",
                "kwargsrepr": "",
            },
            "properties": {
                "delivery_tag": str(uuid.uuid4()),
                "body_encoding": "base64",
                "delivery_info": {"exchange": "", "routing_key": queue_name("lone")},
                "priority": 0,
                "correlation_id": str(uuid.uuid4()),
            },
        }
        client.lpush(queue_name("lone"), json.dumps(message))
    deadline = time.monotonic() + 20
    while client.llen(queue_name("lone")) and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1)
    assert proc.poll() is None, "the worker must survive hostile messages"
    assert not Path("/tmp/pwned").exists()
    text = log.read_text(errors="replace")
    assert "is not lockstep's" in text, text[-2000:]  # refused before Celery decodes anything
    reasons = [json.loads(item)["reason"] for item in client.lrange(deadletter_key("lone"), 0, -1)]
    assert len(reasons) == 2 and all("is not lockstep's" in r for r in reasons), reasons
    assert not client.keys("lockstep:audit:*")

"""One identity per host name: a live name is refused, `--replace` takes it over cleanly.

The lease functions are checked against our own Redis; the end-to-end behaviour with real
`lockstep worker` processes: a duplicate exits 2 with one clear line, `--replace` takes the
name and the old worker stops without touching the new owner's registry entry, and a worker
SIGKILLed on this machine can be restarted at once without `--replace`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from producer.demo import start_worker, stop_workers, wait_registered
from producer.embedded_redis import EmbeddedRedis
from tests.support import condafactory as cf
from tests.support import lockfiles
from worker.broker import BrokerURL
from worker.registry import (
    HostInfo,
    HostNameTaken,
    Lease,
    claim,
    get_hosts,
    owner_key,
    register_owned,
)


def lease(instance: str, pid: int | None = None, node: str | None = None) -> Lease:
    mine = Lease.mine(instance, ttl=30)
    return Lease(instance, node or mine.node, pid or mine.pid, 30)


def info(host: str, instance: str, state: str = "up") -> HostInfo:
    return HostInfo(host=host, platform="linux-64", instance=instance, state=state)


def test_a_held_name_is_refused_and_replace_takes_it(redis_client: redis.Redis) -> None:
    first, second = lease("first", pid=os.getppid()), lease("second")  # both alive here
    assert claim(redis_client, "h", first) is None
    assert register_owned(redis_client, "h", first, info("h", "first"))
    with pytest.raises(HostNameTaken, match="already served by a live worker"):
        claim(redis_client, "h", second)
    assert claim(redis_client, "h", second, replace=True) == "first"
    assert register_owned(redis_client, "h", second, info("h", "second"))
    # the replaced instance can neither refresh nor, stopping, overwrite the new entry
    assert not register_owned(redis_client, "h", first, info("h", "first"))
    assert not register_owned(redis_client, "h", first, info("h", "first", "stopped"), release=True)
    entry = get_hosts(redis_client, ["h"])["h"]
    assert entry is not None and (entry.instance, entry.state) == ("second", "up")


def test_a_dead_holder_on_this_machine_is_taken_over(redis_client: redis.Redis) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    assert claim(redis_client, "h", lease("crashed", pid=gone.pid)) is None
    assert claim(redis_client, "h", lease("restarted")) == "crashed"
    assert claim(redis_client, "h", lease("same-pid-again")) == "restarted"  # e.g. pid 1
    elsewhere = lease("other-machine", pid=gone.pid, node="another-node")
    redis_client.set(owner_key("h2"), elsewhere.value)
    with pytest.raises(HostNameTaken):
        claim(redis_client, "h2", lease("here"))  # a pid on another machine proves nothing


def test_a_clean_stop_releases_the_name(redis_client: redis.Redis) -> None:
    first = lease("first", pid=os.getppid())
    claim(redis_client, "h", first)
    assert register_owned(redis_client, "h", first, info("h", "first", "stopped"), release=True)
    assert redis_client.get(owner_key("h")) is None
    assert claim(redis_client, "h", lease("next")) is None


def test_a_lease_lost_with_redis_data_is_taken_again(redis_client: redis.Redis) -> None:
    first = lease("first")
    claim(redis_client, "h", first)
    redis_client.flushdb()  # Redis restarted without persistence
    assert register_owned(redis_client, "h", first, info("h", "first"))
    assert redis_client.get(owner_key("h")) == first.value.encode()


# ------------------------------------------------------------------ real worker processes


@pytest.fixture(scope="module")
def prefix(tmp_path_factory: pytest.TempPathFactory, conda_channel: cf.Channel) -> Path:
    root = tmp_path_factory.mktemp("identity")
    clean = root / "clean"
    cf.install_prefix(conda_channel, cf.CLEAN_SPECS, clean)
    (root / "conda-lock.yml").write_text(lockfiles.conda_lock({"linux-64": clean}))
    return clean


@pytest.fixture
def broker() -> Iterator[BrokerURL]:
    server = EmbeddedRedis().start()
    try:
        yield BrokerURL.parse(server.url)
    finally:
        server.stop()


def wait_for(what: str, ready: Callable[[], bool], timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if ready():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def instance_of(broker: BrokerURL, host: str) -> str:
    entry = get_hosts(broker.client(), [host]).get(host)
    return entry.instance if entry is not None else ""


def check_ok(broker: BrokerURL, prefix: Path, host: str) -> None:
    lock = prefix.parent / "conda-lock.yml"
    argv = [sys.executable, "-m", "producer.cli", "check", "--broker", broker.url]
    argv += ["--lock", str(lock), "--hosts", host, "--timeout", "60", "--format", "json"]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr + result.stdout
    assert [h["status"] for h in json.loads(result.stdout)["hosts"]] == ["OK"]


def test_a_duplicate_worker_refuses_and_replace_takes_over(
    broker: BrokerURL, prefix: Path, tmp_path: Path
) -> None:
    envs = {"prod": prefix}
    logs = [tmp_path / f"w{i}.log" for i in range(3)]
    first = start_worker(broker, "dup", envs, logs[0], ("--refresh", "1"))
    procs = [first]
    try:
        wait_registered(broker, {"dup"}, [first], logs[:1], timeout=90)
        original = instance_of(broker, "dup")
        duplicate = start_worker(broker, "dup", envs, logs[1], ("--refresh", "1"))
        procs.append(duplicate)
        assert duplicate.wait(60) == 2
        said = logs[1].read_text()
        assert "lockstep: error: host name 'dup' is already served by a live worker" in said
        assert "Traceback" not in said
        assert first.poll() is None and instance_of(broker, "dup") == original

        successor = start_worker(broker, "dup", envs, logs[2], ("--refresh", "1", "--replace"))
        procs.append(successor)
        wait_for("the successor to register", lambda: instance_of(broker, "dup") != original)
        assert first.wait(60) == 0  # noticed on its next heartbeat, stopped cleanly
        assert "taken over" in logs[0].read_text()
        time.sleep(1.5)  # one more heartbeat period: nothing of the old worker came back
        entry = get_hosts(broker.client(), ["dup"])["dup"]
        assert entry is not None and entry.state == "up" and entry.instance != original
        assert successor.poll() is None
        check_ok(broker, prefix, "dup")
    finally:
        stop_workers(procs)


def test_a_killed_worker_restarts_at_once_under_its_name(
    broker: BrokerURL, prefix: Path, tmp_path: Path
) -> None:
    envs = {"prod": prefix}
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    first = start_worker(broker, "phoenix", envs, logs[0])
    procs = [first]
    try:
        wait_registered(broker, {"phoenix"}, [first], logs[:1], timeout=90)
        original = instance_of(broker, "phoenix")
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
        again = start_worker(broker, "phoenix", envs, logs[1])
        procs.append(again)
        wait_for("the restart to register", lambda: instance_of(broker, "phoenix") != original)
        assert again.poll() is None
        check_ok(broker, prefix, "phoenix")
    finally:
        stop_workers(procs)

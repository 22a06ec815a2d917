"""The body of the `lockstep.verify` task, free of Celery so it can be tested directly.

Whatever happens, the producer gets a verdict: a missing lock, a refused environment, a task
of the wrong shape or a crash in our own code all become an ERROR report pushed to the
audit's reply list. A task that raised instead would leave the host silent until the
deadline, and an operator would see UNREACHABLE for a host that is in fact up and broken.

Task kwargs (the contract with `producer.fleet`): `audit` (id), `locks` (platform -> lock
digest; "*" for a platform-agnostic spec file), `env` (name or None), `options` (dict) and
`deadline` (epoch seconds). The worker picks the lock for the subdir of its *own*
environment: the producer never guesses a remote host's platform.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import time
import uuid
from collections import OrderedDict
from typing import Any

import redis

from worker import __version__, codec
from worker.compare import CompareOptions, compare
from worker.config import ConfigError, WorkerConfig
from worker.models import Finding, HostReport, Lock, Package, Snapshot, Status
from worker.registry import audit_key, lock_key
from worker.signing import FleetKey, sign, verify
from worker.snapshot.interface import SnapshotError, SnapshotSource
from worker.verify import judge, take_snapshot

log = logging.getLogger("lockstep.worker")

TASK_NAME = "lockstep.verify"
REPLY_TTL_SECONDS = 3600
ANY_PLATFORM = "*"
# Measured on a 5,000-package conda-lock (random md5/sha256, real-looking urls and builds):
# 1.85 MB of msgpack, stored at brotli quality 5 as 0.41 MB. The caps leave 4x headroom
# over that (hashes do not compress, so stored size tracks decoded size for big locks) and
# bound what a hostile entry under a lock key can cost a worker: one bounded decode, once.
MAX_LOCK_BYTES = 4 * 1024 * 1024  # stored (compressed) bytes, checked with STRLEN before GET
MAX_LOCK_DECODED = 8 * 1024 * 1024  # msgpack bytes after inflating
# A push that cannot reach Redis is retried with backoff until the task's deadline; a task
# without a usable deadline gets this much.
DEFAULT_ANSWER_SECONDS = 60.0
_AUDIT_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_DIGEST = re.compile(r"^[0-9a-f]{64}$")
_LOCK_CACHE = 8
_FAILURE_CACHE = 64


def reply_key(audit_id: str) -> str:
    return audit_key(audit_id) + ":replies"


def bell_key(audit_id: str) -> str:
    """One byte per verdict: the producer blocks here, never on the (unbounded) replies."""
    return audit_key(audit_id) + ":bell"


def verdict_signed_bytes(audit: str, host: str, payload: bytes) -> bytes:
    """What a verdict signature covers: audit and host too, so a verdict cannot be replayed."""
    return audit.encode("utf-8") + b"\x00" + host.encode("utf-8") + b"\x00" + payload


def pack_reply(host: str, payload: bytes, signature: str = "") -> bytes:
    """`host NUL signature NUL payload`: the host survives even when the payload is garbage."""
    return host.encode("utf-8") + b"\x00" + signature.encode("ascii") + b"\x00" + payload


def unpack_reply(item: bytes) -> tuple[str, str, bytes]:
    """(host, signature or "", payload)."""
    host, sep, rest = item.partition(b"\x00")
    if not sep:
        raise codec.CodecError("reply without a host name")
    signature, sep, payload = rest.partition(b"\x00")
    if not sep:
        raise codec.CodecError("reply without a signature field")
    return (
        host.decode("utf-8", errors="replace"),
        signature.decode("ascii", errors="replace"),
        payload,
    )


def check_verdict_signature(
    key: FleetKey, audit: str, host: str, signature: str, payload: bytes
) -> str | None:
    """None when the verdict is signed by `key`; otherwise why it is refused."""
    return verify(key, verdict_signed_bytes(audit, host, payload), signature or None)


def no_platform_message(platform: str, have: list[str] | None) -> str:
    """The one wording for "this lock says nothing about you", wherever it is decided."""
    listed = ", ".join(sorted(have)) if have else "none"
    return f"lock has no packages for platform {platform}; the lock has: {listed}"


class TaskError(ValueError):
    """The task body has the wrong shape: answered as ERROR, never raised to Celery."""


class Verifier:
    """Holds the worker's config, its Redis client and small caches of decoded locks."""

    def __init__(
        self,
        config: WorkerConfig,
        client: redis.Redis,
        source: SnapshotSource,
        *,
        key: FleetKey | None = None,
        platform: str | None = None,
    ) -> None:
        self.config = config
        self.client = client
        self.source = source
        self.key = key
        self.instance = uuid.uuid4().hex
        if platform is None:
            import rattler

            platform = str(rattler.Subdir.current())  # this very host, not a remote guess
        self.platform = platform
        self._locks: OrderedDict[str, Lock] = OrderedDict()
        # a lock is content-addressed, so a digest that failed to decode fails forever
        self._lock_failures: OrderedDict[str, str] = OrderedDict()
        # verdicts by (prefix, lock, options), valid while the snapshot source hands back
        # the identical package list, i.e. while nothing on the host changed
        self._verdicts: dict[
            tuple[str, str, CompareOptions], tuple[list[Package], tuple[Finding, ...]]
        ] = {}

    def fetch_lock(self, digest: str) -> Lock:
        if not _DIGEST.match(digest):
            raise ValueError("malformed lock digest")
        cached = self._locks.get(digest)
        if cached is not None:
            self._locks.move_to_end(digest)
            return cached
        failed = self._lock_failures.get(digest)
        if failed is not None:
            raise ValueError(failed)
        size: Any = self.client.strlen(lock_key(digest))
        if not size:
            raise LookupError(f"lock {digest[:12]} is not in the broker (expired or never stored)")
        if int(size) > MAX_LOCK_BYTES:
            raise ValueError(
                f"lock {digest[:12]} is {int(size)} bytes stored, over the {MAX_LOCK_BYTES} cap"
            )
        data: Any = self.client.get(lock_key(digest))
        if data is None:
            raise LookupError(f"lock {digest[:12]} is not in the broker (expired or never stored)")
        if hashlib.sha256(data).hexdigest() != digest:
            raise ValueError(f"lock {digest[:12]} does not match its digest: refusing it")
        try:
            lock = Lock.model_validate(codec.decode(data, max_size=MAX_LOCK_DECODED))
        except ValueError as exc:  # CodecError and pydantic's ValidationError alike
            message = f"lock {digest[:12]} is unusable: {str(exc).splitlines()[0]}"
            self._lock_failures[digest] = message
            while len(self._lock_failures) > _FAILURE_CACHE:
                self._lock_failures.popitem(last=False)
            raise ValueError(message) from None
        self._locks[digest] = lock
        while len(self._locks) > _LOCK_CACHE:
            self._locks.popitem(last=False)
        return lock

    def verify(
        self, locks: dict[str, str], environment: str | None, options: dict[str, Any]
    ) -> HostReport:
        try:
            env_name, prefix = self.config.prefix_for(environment)
            opts = _compare_options(options)
        except (ConfigError, ValueError) as exc:
            return self._error(environment, str(exc))
        started = time.perf_counter()
        snap = take_snapshot(self.source, prefix)
        platform = self.platform
        if isinstance(snap, Snapshot) and snap.platform:
            platform = snap.platform
        if isinstance(snap, SnapshotError):
            report = self._error(env_name, str(snap), platform=platform)
            report.prefix = str(prefix)
            return report
        lock_digest = locks.get(platform) or locks.get(ANY_PLATFORM)
        if lock_digest is None:
            return self._error(
                env_name, no_platform_message(platform, list(locks)), platform=platform
            )
        try:
            lock = self.fetch_lock(lock_digest)
        except (LookupError, ValueError) as exc:
            return self._error(env_name, str(exc), lock_digest, platform=platform)
        memo_key = (str(prefix), lock_digest, opts)
        memo = self._verdicts.get(memo_key)
        if memo is not None and memo[0] is snap.packages:
            findings = list(memo[1])  # same packages list: the host did not change
        else:
            findings = compare(snap.packages, lock, opts)
            self._verdicts[memo_key] = (snap.packages, tuple(findings))
            while len(self._verdicts) > 32:
                self._verdicts.pop(next(iter(self._verdicts)))
        report = judge(
            snap,
            lock,
            opts,
            host=self.config.host,
            environment=env_name,
            lock_digest=lock_digest,
            started=started,
            findings=findings,
        )
        report.prefix = str(prefix)
        report.platform = report.platform or platform
        return report

    def _error(
        self,
        environment: str | None,
        message: str,
        digest: str | None = None,
        *,
        platform: str | None = None,
    ) -> HostReport:
        return HostReport(
            host=self.config.host,
            status=Status.ERROR,
            environment=environment,
            platform=platform,
            error=message,
            lock_digest=digest,
            checked_at=time.time(),
            lockstep_version=__version__,
        )

    def handle(
        self,
        audit: object,
        locks: object = None,
        env: object = None,
        options: object = None,
        deadline: object = None,
    ) -> None:
        """Run one verification and push the verdict; never raises, whatever the task holds."""
        if not isinstance(audit, str) or not _AUDIT_ID.match(audit):
            return  # nowhere safe to answer
        until = _deadline(deadline)
        environment = env if isinstance(env, str) else None
        try:
            checked = _task_fields(locks, env, options)
        except TaskError as exc:
            report = self._error(environment, f"malformed task: {exc}")
        else:
            try:
                report = self.verify(*checked)
            except Exception as exc:  # our own bug must still produce an answer
                log.exception("lockstep: verification failed")
                report = self._error(environment, f"internal error: {type(exc).__name__}: {exc}")
        self.push(audit, report, until)

    def answer_error(self, audit: str, message: str) -> None:
        """An ERROR verdict for a task that could not even be read (no-op for a bad audit id)."""
        if not isinstance(audit, str) or not _AUDIT_ID.match(audit):
            return
        self.push(audit, self._error(None, message), time.time() + DEFAULT_ANSWER_SECONDS)

    def push(self, audit: str, report: HostReport, deadline: float) -> bool:
        """Deliver a verdict, retrying through broker outages until `deadline`.

        A verdict made while Redis restarts is not lost: it goes out when Redis is back. A
        duplicate (the connection died after the push landed) is harmless, the producer takes
        the first verdict per host.
        """
        report.last_seen = time.time()
        report.instance = self.instance
        try:
            payload = codec.encode(report.model_dump(mode="json"))
        except codec.CodecError as exc:  # cannot happen for a valid model, but must not raise
            report = self._error(
                report.environment, f"internal error: verdict not encodable: {exc}"
            )
            report.instance = self.instance
            payload = codec.encode(report.model_dump(mode="json"))
        host = self.config.host
        signature = sign(self.key, verdict_signed_bytes(audit, host, payload)) if self.key else ""
        item = pack_reply(host, payload, signature)
        delay = 0.1
        while True:
            try:
                pipe = self.client.pipeline(transaction=True)
                pipe.rpush(reply_key(audit), item)
                pipe.expire(reply_key(audit), REPLY_TTL_SECONDS)
                pipe.rpush(bell_key(audit), b"!")
                pipe.expire(bell_key(audit), REPLY_TTL_SECONDS)
                pipe.execute()
                return True
            except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
                if time.time() + delay > deadline:
                    log.warning("lockstep: verdict for audit %s not delivered: %s", audit, exc)
                    return False
                time.sleep(delay)
                delay = min(delay * 2, 2.0)
            except redis.RedisError as exc:  # e.g. OOM: retrying will not help
                log.warning("lockstep: verdict for audit %s refused by Redis: %s", audit, exc)
                return False


def _deadline(value: object) -> float:
    now = time.time()
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return min(float(value), now + 24 * 3600)
    return now + DEFAULT_ANSWER_SECONDS


def _task_fields(
    locks: object, env: object, options: object
) -> tuple[dict[str, str], str | None, dict[str, Any]]:
    if env is not None and not isinstance(env, str):
        raise TaskError(f"'env' must be a string or null, got {type(env).__name__}")
    if options is None:
        options = {}
    if not isinstance(options, dict):
        raise TaskError(f"'options' must be a map, got {type(options).__name__}")
    if not isinstance(locks, dict) or not locks:
        got = "an empty map" if isinstance(locks, dict) else type(locks).__name__
        raise TaskError(f"'locks' must be a map of platform to lock digest, got {got}")
    for platform, digest in locks.items():
        if not isinstance(platform, str) or not isinstance(digest, str):
            raise TaskError("'locks' must map platform names to lock digests (strings)")
    return locks, env, options


def _compare_options(options: dict[str, Any]) -> CompareOptions:
    def names(key: str) -> frozenset[str]:
        value = options.get(key, ())
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise TaskError(f"option {key!r} must be a list of package names")
        return frozenset(value)

    strict = options.get("strict", False)
    if not isinstance(strict, bool):
        raise TaskError("option 'strict' must be true or false")
    return CompareOptions(strict=strict, ignore=names("ignore"), ignore_build=names("ignore_build"))


def source_for(config: WorkerConfig) -> SnapshotSource:
    if config.source == "conda-meta":
        from worker.snapshot.conda_meta import CondaMetaSource

        return CondaMetaSource(cache=True)
    from worker.snapshot.conda_cli import CondaCliSource

    return CondaCliSource(config.source, timeout=config.source_timeout)

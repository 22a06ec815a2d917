"""kombu's Redis transport with a guard in front of Celery: no single queue item ends a worker.

Celery's consumer survives only `InvalidTaskError`, `ContentDisallowed` and `DecodeError`.
An item that is not JSON raised in kombu's `Channel._brpop_read`, JSON that is not a kombu
envelope in `Message.__init__`, a body of the wrong shape in Celery's `Request`; each ended
the worker with "Unrecoverable error", and because the item was restored from `unacked`, it
ended every restart too. Here each item popped from the host's queue is screened while it is
still the raw bytes: size, JSON, envelope, task name, the fleet-key signature over the body
bytes (when the worker has a key), and the body's shape and fields. An item that fails never
reaches Celery (nor `unacked`): it goes to the host's dead-letter list, and when its audit id
is readable the host answers ERROR for that audit, so the producer hears why. Anything that
still raises while Celery handles an accepted message is caught around the consumer callback,
acknowledged and dead-lettered the same way.

`_brpop_read` is kombu's own (5.7), with the one `loads` call replaced by the screen; it is
the only place where the raw item and its queue are both at hand.
"""

from __future__ import annotations

import base64
import binascii
import datetime as _dt
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from queue import Empty
from typing import Any, cast

import redis
from kombu.transport import TRANSPORT_ALIASES
from kombu.transport import redis as kombu_redis
from kombu.utils import encoding as _encoding
from kombu.utils import json as _json

from worker import codec, deadletter
from worker.broker import BrokerURL
from worker.service import TASK_NAME
from worker.signing import SIGNATURE_HEADER, FleetKey, verify
from worker.task_body import MAX_TASK_BODY_BYTES, audit_of, parse_task

log = logging.getLogger("lockstep.worker")
# kombu's own JSON (its object hooks) and text helpers, so an item parses as kombu would
loads = cast(Callable[[str], Any], _json.loads)
dumps = cast(Callable[[Any], str], _json.dumps)
bytes_to_str = cast(Callable[[Any], str], _encoding.bytes_to_str)


#: A real envelope is ~1.5 kB; the base64 body is bounded by the task body cap.
MAX_ITEM_BYTES = 64 * 1024 + MAX_TASK_BODY_BYTES * 4 // 3
GUARD_OPTION = "lockstep_guard"
SOCKET_ALIAS = "lockstep"  # `lockstep+socket://`: kombu takes the transport from the scheme


class Refused(Exception):
    """A queue item the worker will not hand to Celery; `audit` when it could be read."""

    def __init__(self, reason: str, audit: str | None = None) -> None:
        super().__init__(reason)
        self.reason, self.audit = reason, audit


@dataclass(frozen=True)
class Guard:
    """What the transport needs from the worker: where to file refusals, whom to tell."""

    host: str
    client: redis.Redis
    key: FleetKey | None = None
    answer_error: Callable[[str, str], None] | None = None
    #: set once another instance took this host name over: items go back to the queue
    relinquished: threading.Event = field(default_factory=threading.Event)

    def refuse(self, raw: bytes, reason: str, audit: str | None) -> None:
        log.warning("lockstep: refused a message (%s); kept in the dead-letter list", reason)
        try:
            deadletter.record(self.client, self.host, raw, reason, audit)
        except Exception as exc:  # a broker blip must not turn a refusal into a crash
            log.warning("lockstep: could not record a dead letter: %s", exc)
        if audit is not None and self.answer_error is not None:
            try:
                self.answer_error(audit, f"refused task: {reason}")
            except Exception as exc:
                log.warning("lockstep: could not answer ERROR for audit %s: %s", audit, exc)


def screen(item: bytes, key: FleetKey | None) -> dict[str, Any]:
    """The kombu envelope of an acceptable `lockstep.verify` message, or `Refused`."""
    if len(item) > MAX_ITEM_BYTES:
        raise Refused(f"queue item of {len(item)} bytes exceeds {MAX_ITEM_BYTES}")
    try:
        payload = loads(item.decode("utf-8"))
    except (ValueError, TypeError, RecursionError) as exc:
        raise Refused(f"queue item is not JSON: {type(exc).__name__}") from exc
    if not isinstance(payload, dict):
        raise Refused(f"queue item is JSON {type(payload).__name__}, not a message envelope")
    properties, headers, body = (payload.get(k) for k in ("properties", "headers", "body"))
    if not isinstance(properties, dict) or not isinstance(headers, dict):
        raise Refused("message envelope lacks 'properties' or 'headers'")
    if not isinstance(properties.get("delivery_tag"), str) or not properties["delivery_tag"]:
        raise Refused("message envelope lacks a delivery tag")
    info = properties.get("delivery_info")
    if not isinstance(info, dict) or not isinstance(info.get("routing_key", ""), str):
        raise Refused("message envelope lacks delivery info")
    task = headers.get("task")
    if task != TASK_NAME:
        raise Refused(f"unknown task {str(task)[:80]!r}")
    if not isinstance(headers.get("id"), str) or not headers["id"]:
        raise Refused("task message without an id")
    for name in ("eta", "expires"):
        _check_time(headers, name)
    if payload.get("content-type") != codec.CONTENT_TYPE:
        raise Refused(f"content type {str(payload.get('content-type'))[:60]!r} is not lockstep's")
    if properties.get("body_encoding") != "base64" or not isinstance(body, str):
        raise Refused("message body is not base64 text")
    try:
        raw = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise Refused("message body is not valid base64") from exc
    if key is not None:
        problem = verify(key, raw, headers.get(SIGNATURE_HEADER))
        if problem is not None:
            raise Refused(problem, _readable_audit(raw))
    try:
        parse_task(raw)
    except codec.CodecError as exc:
        raise Refused(f"bad task body: {exc}", _readable_audit(raw)) from exc
    return payload


def _check_time(headers: dict[str, Any], name: str) -> None:
    value = headers.get(name)
    if value is None:
        return
    try:
        if not isinstance(value, str):
            raise ValueError(name)
        _dt.datetime.fromisoformat(value)
    except ValueError as exc:
        raise Refused(f"task header {name!r} is not an ISO time") from exc


def _readable_audit(raw: bytes) -> str | None:
    """Best effort, bounded: the audit id of a body that is refused for another reason."""
    try:
        value = codec.decode_value(raw, max_size=MAX_TASK_BODY_BYTES)
    except codec.CodecError:
        return None
    if isinstance(value, list) and len(value) >= 2:
        return audit_of(value[1])
    return audit_of(value)


def _audit_of_envelope(payload: Any) -> str | None:
    try:
        return _readable_audit(base64.b64decode(payload["body"], validate=True))
    except Exception:
        return None


class _GuardedChannelMixin:
    """Screens every popped item and fences the consumer callback; see the module docstring."""

    lockstep_guard: Guard | None = None
    # attributes of kombu's Redis Channel this mixin relies on
    client: Any
    connection: Any
    connection_errors: Any
    sep: str
    qos: Any
    _queue_cycle: Any
    _in_poll: Any

    def _lockstep_accept(self, item: bytes) -> dict[str, Any] | None:
        guard = self.lockstep_guard
        try:
            return screen(item, guard.key if guard else None)
        except Refused as refusal:
            if guard is not None:
                guard.refuse(item, refusal.reason, refusal.audit)
            else:
                log.warning("lockstep: dropped a message: %s", refusal.reason)
            return None

    def _brpop_read(self, **options: Any) -> bool:
        try:
            try:
                dest__item = self.client.parse_response(self.client.connection, "BRPOP", **options)
            except self.connection_errors:
                # if there's a ConnectionError, disconnect so the next
                # iteration will reconnect automatically.
                self.client.connection.disconnect()
                raise
            if dest__item:
                key, item = dest__item
                dest = bytes_to_str(key).rsplit(self.sep, 1)[0]
                self._queue_cycle.rotate(dest)
                guard = self.lockstep_guard
                if guard is not None and guard.relinquished.is_set():
                    guard.client.rpush(key, item)  # the new owner pops it next
                    return True
                payload = self._lockstep_accept(item)
                if payload is not None:
                    self.connection._deliver(payload, dest)
                return True
            raise Empty()
        finally:
            self._in_poll = None
            flush = getattr(self, "_flush_brpop_reauth", None)
            if flush is not None:
                flush()

    def _get(self, queue: str) -> Any:
        while True:
            item = super()._get(queue)  # type: ignore[misc]
            # kombu already parsed it; screen its JSON again so both paths apply one rule
            payload = self._lockstep_accept(dumps(item).encode("utf-8"))
            if payload is not None:
                return payload

    def basic_consume(self, queue: str, *args: Any, **kwargs: Any) -> Any:
        result = super().basic_consume(queue, *args, **kwargs)  # type: ignore[misc]
        inner = self.connection._callbacks[queue]

        def fenced(raw_message: Any) -> Any:
            try:
                return inner(raw_message)
            except self.connection_errors:
                raise  # kombu reconnects; the message is restored from unacked
            except Exception as exc:
                log.exception("lockstep: handling a message failed; it is dead-lettered")
                self._lockstep_quarantine(raw_message, f"{type(exc).__name__}: {exc}")
                return None

        self.connection._callbacks[queue] = fenced
        return result

    def _lockstep_quarantine(self, raw_message: Any, why: str) -> None:
        try:
            tag = raw_message["properties"]["delivery_tag"]
            if tag in self.qos._delivered and tag not in self.qos._dirty:
                self.qos.reject(tag, requeue=False)  # out of `unacked`: never redelivered
        except Exception as exc:
            log.warning("lockstep: could not acknowledge a failed message: %s", exc)
        try:
            raw = dumps(raw_message).encode("utf-8")
        except Exception:
            raw = repr(raw_message).encode("utf-8", errors="replace")
        guard = self.lockstep_guard
        if guard is not None:
            guard.refuse(raw, f"worker failed on message: {why}", _audit_of_envelope(raw_message))


class GuardedChannel(_GuardedChannelMixin, kombu_redis.Channel):  # type: ignore[misc]
    _base_options: tuple[str, ...] = kombu_redis.Channel.from_transport_options
    from_transport_options = (*_base_options, GUARD_OPTION)  # type: ignore[assignment]


class GuardedTransport(kombu_redis.Transport):
    Channel = GuardedChannel


class GuardedSentinelChannel(_GuardedChannelMixin, kombu_redis.SentinelChannel):  # type: ignore[misc]
    _base_options: tuple[str, ...] = kombu_redis.SentinelChannel.from_transport_options
    from_transport_options = (*_base_options, GUARD_OPTION)  # type: ignore[assignment]


class GuardedSentinelTransport(kombu_redis.SentinelTransport):
    Channel = GuardedSentinelChannel


TRANSPORT_ALIASES.setdefault(SOCKET_ALIAS, f"{__name__}:GuardedTransport")


def celery_broker(broker: BrokerURL) -> tuple[str, type[Any] | None]:
    """(URL, transport) for Celery so that the guarded transport serves every scheme.

    kombu takes the transport from the scheme of a `x+socket://` URL whatever the
    `transport` argument says, so a unix socket URL names the guarded transport's alias;
    every other scheme keeps its URL (host, port, db, TLS, sentinel list) and gets the class.
    """
    url = broker.celery_url()
    scheme, sep, rest = url.partition("://")
    if scheme == "redis+socket":
        return f"{SOCKET_ALIAS}+socket{sep}{rest}", None
    if scheme == "sentinel":
        return url, GuardedSentinelTransport
    return url, GuardedTransport

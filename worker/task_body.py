"""The shape of a `lockstep.verify` message body, checked before Celery ever sees it.

Celery unpacks a protocol-2 body as `args, kwargs, embed = body` deep inside the worker; a
body of any other shape raised there and ended the worker ("Unrecoverable error"). Celery
only survives `DecodeError` from the serializer, so the serializer's decode function checks
the shape and turns every mismatch into an error kombu wraps as `DecodeError` (logged and
acknowledged). The guarded transport uses the same functions, with the stricter field checks,
to refuse a message before it is delivered at all.

A task body is a few hundred bytes: its decode cap is far below the codec's default, so a
small compressed message cannot make the worker build millions of objects.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Final

from worker import codec

#: A real body (audit id, a lock digest per platform, options with ignore lists) is < 2 kB.
MAX_TASK_BODY_BYTES: Final = 256 * 1024
_AUDIT_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class TaskBodyError(codec.CodecError):
    """The body decodes but is not `[args, kwargs, embed]`, or its fields are wrong."""


@dataclass(frozen=True)
class TaskBody:
    args: list[Any]
    kwargs: dict[str, Any]
    embed: dict[str, Any] | None

    @property
    def audit(self) -> str | None:
        return audit_of(self.kwargs)


def audit_of(kwargs: object) -> str | None:
    """The audit id when it is readable and safe to answer to, else None."""
    if isinstance(kwargs, dict):
        audit = kwargs.get("audit")
        if isinstance(audit, str) and _AUDIT_ID.match(audit):
            return audit
    return None


def check_shape(value: object) -> TaskBody:
    """`[list, dict, dict | None]` or TaskBodyError."""
    if not isinstance(value, list) or len(value) != 3:
        kind = f"a list of {len(value)}" if isinstance(value, list) else type(value).__name__
        raise TaskBodyError(f"task body must be [args, kwargs, embed], got {kind}")
    args, kwargs, embed = value
    if not isinstance(args, list):
        raise TaskBodyError(f"task args must be a list, got {type(args).__name__}")
    if not isinstance(kwargs, dict):
        raise TaskBodyError(f"task kwargs must be a map, got {type(kwargs).__name__}")
    if embed is not None and not isinstance(embed, dict):
        raise TaskBodyError(f"task embed must be a map or null, got {type(embed).__name__}")
    return TaskBody(args, kwargs, embed)


def decode_body(data: bytes | bytearray | memoryview) -> list[Any]:
    """The serializer's decode: bounded, and only bodies Celery can unpack."""
    body = check_shape(codec.decode_value(data, max_size=MAX_TASK_BODY_BYTES))
    return [body.args, body.kwargs, body.embed]


def parse_task(data: bytes) -> TaskBody:
    """Decode and check every field of a verify task; the transport refuses what fails."""
    body = check_shape(codec.decode_value(data, max_size=MAX_TASK_BODY_BYTES))
    check_fields(body)
    return body


def check_fields(body: TaskBody) -> None:
    kwargs = body.kwargs
    if body.args:
        raise TaskBodyError("positional task arguments are not accepted")
    if audit_of(kwargs) is None:
        raise TaskBodyError("task has no valid 'audit' id")
    locks = kwargs.get("locks")
    if not isinstance(locks, dict) or not locks:
        got = "an empty map" if isinstance(locks, dict) else type(locks).__name__
        raise TaskBodyError(f"'locks' must be a map of platform to lock digest, got {got}")
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in locks.items()):
        raise TaskBodyError("'locks' must map platform names to lock digests (strings)")
    env = kwargs.get("env")
    if env is not None and not isinstance(env, str):
        raise TaskBodyError(f"'env' must be a string or null, got {type(env).__name__}")
    options = kwargs.get("options")
    if options is not None and not isinstance(options, dict):
        raise TaskBodyError(f"'options' must be a map, got {type(options).__name__}")
    deadline = kwargs.get("deadline")
    if deadline is not None and not (
        isinstance(deadline, int | float)
        and not isinstance(deadline, bool)
        and math.isfinite(deadline)
    ):
        raise TaskBodyError("'deadline' must be a finite number of epoch seconds")

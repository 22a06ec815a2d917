"""Opt-in authenticity for tasks and verdicts: HMAC-SHA256 with a fleet-wide shared key.

Without a key, anyone who can write to the broker can enqueue a task or push a verdict that
says OK. With one, the producer signs every task body and each worker signs every verdict;
a message whose signature is missing or wrong is refused and reported, never trusted.

The key is read from a file (`LOCKSTEP_FLEET_KEY_FILE`) or the environment
(`LOCKSTEP_FLEET_KEY`), never from a command-line value, so it stays out of `ps`. Its id is
the first 8 hex digits of the key's own SHA-256: a header names which key signed a message
without revealing anything about the key.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

SIGNATURE_HEADER = "lockstep-signature"
KEY_FILE_ENV = "LOCKSTEP_FLEET_KEY_FILE"
KEY_ENV = "LOCKSTEP_FLEET_KEY"
_MIN_KEY_BYTES = 16


class FleetKeyError(Exception):
    """The fleet key cannot be read or is too short; the message never contains the key."""


@dataclass(frozen=True)
class FleetKey:
    secret: bytes = field(repr=False)

    @property
    def kid(self) -> str:
        return hashlib.sha256(self.secret).hexdigest()[:8]


def key_from_bytes(raw: bytes, where: str) -> FleetKey:
    secret = raw.strip()
    if len(secret) < _MIN_KEY_BYTES:
        raise FleetKeyError(f"{where}: fleet key must be at least {_MIN_KEY_BYTES} bytes")
    return FleetKey(secret)


def load_fleet_key(
    path: str | Path | None = None, environ: Mapping[str, str] | None = None
) -> FleetKey | None:
    """The key from `path`, else `$LOCKSTEP_FLEET_KEY_FILE`, else `$LOCKSTEP_FLEET_KEY`."""
    env = os.environ if environ is None else environ
    chosen = path or env.get(KEY_FILE_ENV)
    if chosen:
        try:
            raw = Path(chosen).read_bytes()
        except OSError as exc:
            raise FleetKeyError(f"{chosen}: cannot read fleet key: {exc.strerror or exc}") from exc
        return key_from_bytes(raw, str(chosen))
    if env.get(KEY_ENV):
        return key_from_bytes(env[KEY_ENV].encode("utf-8"), KEY_ENV)
    return None


def sign(key: FleetKey, data: bytes) -> str:
    """`kid:hexdigest`, the value of the signature header."""
    digest = hmac.new(key.secret, data, hashlib.sha256).hexdigest()
    return f"{key.kid}:{digest}"


def verify(key: FleetKey, data: bytes, header: object) -> str | None:
    """None when `header` is a valid signature of `data`; otherwise why it is refused."""
    if header is None or header == "":
        return "unsigned message (this fleet requires a signature)"
    if not isinstance(header, str) or ":" not in header:
        return "malformed signature header"
    kid, _, digest = header.partition(":")
    if kid != key.kid:
        return f"signed with unknown key id {kid[:16]!r}"
    expected = hmac.new(key.secret, data, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, digest):
        return "bad signature"
    return None

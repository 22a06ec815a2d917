"""The contract shared by the worker and the producer.

The producer is a client of these models: it builds `Lock`s, the worker turns a snapshot
and a `Lock` into a `HostReport`. Everything here must survive a msgpack round trip, so
fields are plain strings, ints, lists and nested models — no datetimes, no sets.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Manager = Literal["conda", "pypi"]


class Model(BaseModel):
    """Base of every lockstep model.

    Schemas are built on first use rather than at import: building them all costs more
    than a whole local check, and most runs validate only a few of these types.
    """

    model_config = ConfigDict(defer_build=True)


@dataclass(frozen=True, slots=True, kw_only=True)
class Package:
    """One installed package as conda itself would list it.

    `channel` is the channel's canonical base URL (no trailing slash, no subdir), or
    `pypi` for packages installed by pip; keeping the URL rather than conda's short name
    lets a lock written against a mirror be told apart from one against the origin.

    A slotted dataclass rather than a BaseModel: a snapshot makes one per installed
    package, and pydantic's construction cost alone (~20 µs each) was most of the time
    budget of a 5,000-package check. pydantic still validates and serializes it as a
    field of `Snapshot`.
    """

    name: str
    version: str
    build: str = ""
    build_number: int = 0
    manager: Manager = "conda"
    channel: str = ""
    subdir: str = ""
    md5: str | None = None
    sha256: str | None = None
    url: str | None = None
    # conda drops a python record whose dist-info anchor vanished (pip replaced it);
    # we keep it, flagged, so a pip package on top of it can be reported as such.
    clobbered: bool = False


class Snapshot(Model):
    """Everything one snapshot source saw in one prefix.

    `warnings` carries what conda would silently skip (malformed record names, dist-info
    without RECORD) so that a user can see why a package is not listed.
    """

    prefix: str
    source: str
    platform: str | None = None
    packages: list[Package]
    warnings: list[str] = Field(default_factory=list)


class LockedPackage(Model):
    """What a lock expects of one package.

    Full locks pin `version`/`build`/`channel`/hashes; spec files (environment.yml)
    carry a conda MatchSpec or a PEP 508 requirement in `spec` instead.
    `line` points back into the lock file so every finding can cite its source.
    """

    model_config = ConfigDict(frozen=True)

    name: str
    manager: Manager = "conda"
    version: str | None = None
    build: str | None = None
    channel: str | None = None
    subdir: str | None = None
    md5: str | None = None
    sha256: str | None = None
    url: str | None = None
    spec: str | None = None
    line: int | None = None


class LockKind(StrEnum):
    FULL = "full"  # lists every package: anything else installed is EXTRA
    SPEC = "spec"  # constraints only: extras are reported only with --strict


class Lock(Model):
    """A normalized lock for one platform (and one environment, for pixi)."""

    source: str
    format: str
    kind: LockKind
    platform: str
    environment: str | None = None
    channels: list[str] = Field(default_factory=list)
    packages: list[LockedPackage]
    notes: list[str] = Field(default_factory=list)


class FindingKind(StrEnum):
    MISSING = "MISSING"
    EXTRA = "EXTRA"
    VERSION = "VERSION"
    BUILD = "BUILD"
    CHANNEL = "CHANNEL"
    HASH = "HASH"
    PIP_SHADOWS_CONDA = "PIP_SHADOWS_CONDA"
    UNLOCKED_PIP = "UNLOCKED_PIP"


class Finding(Model):
    """One difference between the lock and the host; `expected`/`actual` are display strings."""

    kind: FindingKind
    name: str
    manager: Manager = "conda"
    expected: str | None = None
    actual: str | None = None
    message: str = ""


class Status(StrEnum):
    OK = "OK"
    DRIFT = "DRIFT"
    ERROR = "ERROR"
    UNREACHABLE = "UNREACHABLE"


class HostReport(Model):
    """The verdict for one host and one environment.

    Times are epoch seconds (floats) so the codec never needs a datetime type.
    """

    host: str
    status: Status
    environment: str | None = None
    prefix: str | None = None
    platform: str | None = None
    lock_source: str | None = None
    lock_digest: str | None = None
    findings: list[Finding] = Field(default_factory=list)
    packages: int = 0
    warnings: list[str] = Field(default_factory=list)
    error: str | None = None
    checked_at: float | None = None
    last_seen: float | None = None
    duration_ms: float | None = None
    lockstep_version: str | None = None
    # the worker process that answered (its registry entry's `instance`): a verdict from a
    # stale process that shared the host name is recognised and set aside
    instance: str | None = None

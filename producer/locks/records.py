"""Lock records built from values the loaders have already checked.

`LockedPackage(...)` validates every field again and, on its first call in a process, builds
the pydantic schema of the model; both cost more than reading a 5,000-package lock. Every value
a loader puts here has been validated by the loader itself (digests by `hex_digest`, channels
by `canonical_channel`, builds by the archive name), so the records are made with
`model_construct`, which trusts its input and validates nothing: every field the model
declares is therefore passed explicitly, each with its model type or None.
"""

from __future__ import annotations

from worker.models import Lock, LockedPackage, LockKind, Manager


def locked_package(
    name: str,
    *,
    manager: Manager = "conda",
    version: str | None = None,
    build: str | None = None,
    channel: str | None = None,
    subdir: str | None = None,
    md5: str | None = None,
    sha256: str | None = None,
    url: str | None = None,
    spec: str | None = None,
    line: int | None = None,
) -> LockedPackage:
    return LockedPackage.model_construct(
        name=name,
        manager=manager,
        version=version,
        build=build,
        channel=channel,
        subdir=subdir,
        md5=md5,
        sha256=sha256,
        url=url,
        spec=spec,
        line=line,
    )


def lock(
    *,
    source: str,
    format: str,
    kind: LockKind,
    platform: str,
    packages: list[LockedPackage],
    environment: str | None = None,
    channels: list[str] | None = None,
    notes: list[str] | None = None,
) -> Lock:
    """A Lock as `Lock(...)` would make it; its packages are not validated a second time."""
    return Lock.model_construct(
        source=source,
        format=format,
        kind=kind,
        platform=platform,
        environment=environment,
        channels=[] if channels is None else channels,
        packages=packages,
        notes=[] if notes is None else notes,
    )

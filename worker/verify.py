"""Snapshot one prefix and judge it against a lock: the unit of work of every mode.

`lockstep check --local` and the fleet worker's task both end here, so a host verified
remotely gets exactly the verdict it would get locally.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

from worker import __version__
from worker.compare import CompareOptions, compare
from worker.models import Finding, HostReport, Lock, Snapshot, Status
from worker.snapshot.interface import SnapshotError, SnapshotSource


def judge(
    snapshot: Snapshot | SnapshotError,
    lock: Lock,
    options: CompareOptions | None = None,
    *,
    host: str | None = None,
    environment: str | None = None,
    lock_digest: str | None = None,
    started: float | None = None,
    findings: list[Finding] | None = None,
) -> HostReport:
    """A broken environment is an ERROR verdict, not a crash.

    `findings` may carry a comparison already made for this very snapshot and lock.
    """
    report = HostReport(
        host=host or socket.gethostname(),
        status=Status.ERROR,
        environment=environment,
        lock_source=lock.source,
        lock_digest=lock_digest,
        checked_at=time.time(),
        lockstep_version=__version__,
    )
    if isinstance(snapshot, SnapshotError):
        report.error = str(snapshot)
    else:
        if findings is None:
            findings = compare(snapshot.packages, lock, options)
        report.status = Status.DRIFT if findings else Status.OK
        report.prefix = snapshot.prefix
        report.findings = findings
        report.packages = len(snapshot.packages)
        report.platform = snapshot.platform
        report.warnings = snapshot.warnings
    if started is not None:
        report.duration_ms = round((time.perf_counter() - started) * 1000, 3)
    return report


def take_snapshot(source: SnapshotSource, prefix: Path) -> Snapshot | SnapshotError:
    try:
        return source.snapshot(prefix)
    except SnapshotError as exc:
        return exc

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
from worker.models import HostReport, Lock, Status
from worker.snapshot.interface import SnapshotError, SnapshotSource


def verify_prefix(
    prefix: Path,
    lock: Lock,
    source: SnapshotSource,
    options: CompareOptions | None = None,
    *,
    host: str | None = None,
    environment: str | None = None,
    lock_digest: str | None = None,
) -> HostReport:
    """Never raises for a broken environment: that is an ERROR verdict, not a crash."""
    started = time.perf_counter()
    report = HostReport(
        host=host or socket.gethostname(),
        status=Status.ERROR,
        environment=environment,
        prefix=str(prefix),
        lock_source=lock.source,
        lock_digest=lock_digest,
        checked_at=time.time(),
        lockstep_version=__version__,
    )
    try:
        snap = source.snapshot(prefix)
    except SnapshotError as exc:
        report.error = str(exc)
    else:
        findings = compare(snap.packages, lock, options)
        report.status = Status.DRIFT if findings else Status.OK
        report.findings = findings
        report.packages = len(snap.packages)
        report.platform = snap.platform
        report.warnings = snap.warnings
    report.duration_ms = round((time.perf_counter() - started) * 1000, 3)
    return report

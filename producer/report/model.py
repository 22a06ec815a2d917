"""The report every output format renders: host verdicts plus a package matrix.

The matrix answers the question the fleet's users actually ask after an incident — "which
hosts have which numpy?" — by grouping, per package with any finding, the hosts by what
they actually have.
"""

from __future__ import annotations

import time
from collections import defaultdict

from pydantic import ConfigDict, Field

from producer.outcome import exit_code_for_hosts
from worker.models import FindingKind, HostReport, Lock, Model, Status

SCHEMA = "lockstep.report/1"


class LockInfo(Model):
    source: str
    format: str
    kind: str
    platform: str
    environment: str | None = None
    packages: int
    digest: str | None = None


class Variant(Model):
    """One actual state of a package and the hosts that are in it."""

    actual: str
    kind: FindingKind
    hosts: list[str]


class MatrixRow(Model):
    name: str
    manager: str
    expected: str | None
    variants: list[Variant]


class Summary(Model):
    targeted: int
    ok: int
    drift: int
    error: int
    unreachable: int
    findings: int


class Report(Model):
    schema_: str = Field(default=SCHEMA, alias="schema")
    generated_at: float
    lock: LockInfo | None
    summary: Summary
    hosts: list[HostReport]
    matrix: list[MatrixRow]
    exit_code: int
    # Why the audit could not finish (e.g. "broker lost for 40 s"): exit 4 unless drift was found.
    infrastructure_error: str | None = None

    model_config = ConfigDict(defer_build=True, populate_by_name=True)


def lock_info(lock: Lock, digest: str | None = None) -> LockInfo:
    return LockInfo(
        source=lock.source,
        format=lock.format,
        kind=lock.kind.value,
        platform=lock.platform,
        environment=lock.environment,
        packages=len(lock.packages),
        digest=digest,
    )


def exit_code_for(hosts: list[HostReport], infrastructure_error: str | None = None) -> int:
    """Kept for callers; the rule itself lives in producer.outcome, the one place for it."""
    return exit_code_for_hosts(hosts, infrastructure_error)


def build_report(
    lock: LockInfo | None, hosts: list[HostReport], *, infrastructure_error: str | None = None
) -> Report:
    ordered = sorted(hosts, key=lambda h: (h.host, h.environment or ""))
    rows: dict[tuple[str, str], dict[str, Variant]] = defaultdict(dict)
    expected: dict[tuple[str, str], str | None] = {}
    for host in ordered:
        for f in host.findings:
            key = (f.name, f.manager)
            expected.setdefault(key, f.expected)
            actual = f.actual or "(absent)"
            variant = rows[key].get(actual)
            if variant is None:
                variant = rows[key][actual] = Variant(actual=actual, kind=f.kind, hosts=[])
            variant.hosts.append(host.host)
    matrix = [
        MatrixRow(
            name=name,
            manager=manager,
            expected=expected[(name, manager)],
            variants=sorted(
                rows[(name, manager)].values(), key=lambda v: (-len(v.hosts), v.actual)
            ),
        )
        for name, manager in sorted(rows)
    ]
    count = {s: sum(1 for h in ordered if h.status is s) for s in Status}
    summary = Summary(
        targeted=len(ordered),
        ok=count[Status.OK],
        drift=count[Status.DRIFT],
        error=count[Status.ERROR],
        unreachable=count[Status.UNREACHABLE],
        findings=sum(len(h.findings) for h in ordered),
    )
    return Report(
        generated_at=time.time(),
        lock=lock,
        summary=summary,
        hosts=ordered,
        matrix=matrix,
        exit_code=exit_code_for_hosts(ordered, infrastructure_error),
        infrastructure_error=infrastructure_error,
    )

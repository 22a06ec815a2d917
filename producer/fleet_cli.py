"""The fleet half of the CLI: `check` through a broker, `hosts`, `worker`.

Kept apart from `producer.cli` so that a local check never imports Celery or redis-py.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from producer.fleet import FleetCheck, ProgressFn, Target, TargetError, match_hosts
from producer.inventory import Group, InventoryError, load_inventory
from producer.report.model import Report, build_report, lock_info
from worker.broker import BrokerError, BrokerURL
from worker.signing import FleetKey


def parse_broker(url: str, master_name: str | None) -> BrokerURL:
    try:
        return BrokerURL.parse(url, master_name)
    except BrokerError as exc:
        raise click.UsageError(str(exc)) from exc


def build_targets(
    check: FleetCheck,
    *,
    lock_path: Path,
    hosts: tuple[str, ...],
    all_hosts: bool,
    groups: tuple[str, ...],
    inventory: Path | None,
    env: str | None,
) -> tuple[list[Target], list[str]]:
    """Targets from --hosts/--host, --all and --group; returns (targets, warnings).

    `--all` and globs select from the registry *and* the hosts earlier audits saw (and, with
    --inventory, every host it names): after a Redis restart the registry holds only the
    workers that came back, and the rest must show up as unverified, not vanish.
    """
    warnings: list[str] = []
    registered = [h.host for h in check.registry()]
    table = None
    if groups or (all_hosts and inventory is not None):
        if inventory is None:
            raise TargetError("--group needs --inventory FILE (or LOCKSTEP_INVENTORY)")
        try:
            table = load_inventory(inventory)
        except InventoryError as exc:
            raise TargetError(str(exc)) from exc
    remembered = check.known_hosts() if all_hosts or _has_glob(hosts, groups, table) else {}
    pool = dict.fromkeys([*registered, *remembered])
    if all_hosts and table is not None:
        for members in table.values():
            pool.update(dict.fromkeys(h for h in members.hosts if not _is_glob(h)))
    known = list(pool)
    chosen: dict[str, Target] = {}
    if all_hosts:
        for name in known:
            chosen.setdefault(name, Target(name, lock_path, env))
    if hosts:
        names, unmatched = match_hosts(hosts, known)
        warnings += [f"--hosts {p!r} matches no registered host" for p in unmatched]
        for name in names:
            chosen.setdefault(name, Target(name, lock_path, env))
    if groups:
        assert table is not None and inventory is not None
        for group_name in groups:
            group = table.get(group_name)
            if group is None:
                raise TargetError(
                    f"{inventory}: no group {group_name!r} "
                    f"(groups: {', '.join(sorted(table)) or 'none'})"
                )
            names, unmatched = match_hosts(group.hosts, known)
            warnings += [f"group {group_name}: {p!r} matches no registered host" for p in unmatched]
            for name in names:
                chosen.setdefault(name, Target(name, group.lock or lock_path, group.env or env))
    if not chosen:
        if not (all_hosts or hosts or groups):
            raise TargetError("say which hosts: --hosts PATTERN, --host NAME, --group G or --all")
        raise TargetError("no host matches the given targets")
    missing = [name for name in chosen if name in remembered and name not in registered]
    if missing:
        shown = ", ".join(missing[:10]) + (
            f" and {len(missing) - 10} more" if len(missing) > 10 else ""
        )
        warnings.append(
            f"{len(missing)} host(s) known from earlier audits are not registered "
            f"(Redis restarted without persistence, or their workers are down): {shown}; "
            "they are still asked and count as unverified if silent"
        )
    return list(chosen.values()), warnings


def _is_glob(pattern: str) -> bool:
    return any(ch in pattern for ch in "*?[")


def _has_glob(
    hosts: tuple[str, ...], groups: tuple[str, ...], table: dict[str, Group] | None
) -> bool:
    parts = [p for pattern in hosts for p in pattern.split(",")]
    if table is not None:
        parts += [h for name in groups if name in table for h in table[name].hosts]
    return any(_is_glob(p) for p in parts)


@contextmanager
def progress_bar(enabled: bool) -> Iterator[ProgressFn | None]:
    """hosts answered / targeted, on stderr, only when a person is watching."""
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("collecting verdicts"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task("hosts", total=None)

        def update(answered: int, total: int) -> None:
            bar.update(task, completed=answered, total=total)

        yield update


@dataclass(frozen=True)
class FleetRequest:
    """Everything one fleet audit needs, as the CLI (or the demo) gathered it."""

    broker: BrokerURL
    lock_path: Path
    hosts: tuple[str, ...] = ()
    all_hosts: bool = False
    groups: tuple[str, ...] = ()
    inventory: Path | None = None
    env: str | None = None
    timeout: float = 30.0
    lock_format: str | None = None
    lock_environment: str | None = None
    platform: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    key: FleetKey | None = None


def run_fleet_check(req: FleetRequest) -> Report:
    """Raises BrokerError (exit 4), TargetError (exit 2) or LockError (exit 2)."""
    req.broker.ping()
    check = FleetCheck(
        req.broker,
        timeout=req.timeout,
        platform_default=req.platform,  # the user's explicit choice only: never a guess
        lock_format=req.lock_format,
        lock_environment=req.lock_environment,
        options=req.options,
        key=req.key,
    )
    targets, warnings = build_targets(
        check,
        lock_path=req.lock_path,
        hosts=req.hosts,
        all_hosts=req.all_hosts,
        groups=req.groups,
        inventory=req.inventory,
        env=req.env,
    )
    for warning in warnings:
        click.echo(f"lockstep: warning: {warning}", err=True)
    with progress_bar(sys.stderr.isatty()) as progress:
        outcome = check.run(targets, progress)
    if outcome.interrupted:
        click.echo("lockstep: interrupted: reporting what arrived so far", err=True)
    locks = list(outcome.locks.values())
    info = lock_info(locks[0]) if len({(lk.source, lk.platform) for lk in locks}) == 1 else None
    if outcome.infrastructure_error:
        click.echo(f"lockstep: warning: {outcome.infrastructure_error}", err=True)
    return build_report(info, outcome.reports, infrastructure_error=outcome.infrastructure_error)


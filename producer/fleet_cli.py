"""The fleet half of the CLI: `check` through a broker, `hosts`, `worker`.

Kept apart from `producer.cli` so that a local check never imports Celery or redis-py.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import rattler

from producer.fleet import FleetCheck, ProgressFn, Target, TargetError, match_hosts
from producer.inventory import InventoryError, load_inventory
from producer.report.model import Report, build_report, lock_info
from worker.broker import BrokerError, BrokerURL


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
    """Targets from --hosts/--host, --all and --group; returns (targets, warnings)."""
    warnings: list[str] = []
    known = [h.host for h in check.registry()]
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
        if inventory is None:
            raise TargetError("--group needs --inventory FILE (or LOCKSTEP_INVENTORY)")
        try:
            table = load_inventory(inventory)
        except InventoryError as exc:
            raise TargetError(str(exc)) from exc
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
    return list(chosen.values()), warnings


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


def run_fleet_check(req: FleetRequest) -> Report:
    """Raises BrokerError (exit 4), TargetError (exit 2) or LockError (exit 2)."""
    req.broker.ping()
    check = FleetCheck(
        req.broker,
        timeout=req.timeout,
        platform_default=req.platform or str(rattler.Platform.current()),
        lock_format=req.lock_format,
        lock_environment=req.lock_environment,
        options=req.options,
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
    return build_report(info, outcome.reports)


def forget_hosts(broker: BrokerURL, names: tuple[str, ...]) -> list[str]:
    """Drop registry entries and pending messages of hosts that will never come back."""
    from worker.registry import forget, host_key, queue_name

    broker.ping()
    client = broker.client()
    forgotten = []
    for name in names:
        if client.exists(host_key(name)) or client.exists(queue_name(name)):
            forget(client, name)
            client.delete(queue_name(name))
            forgotten.append(name)
        else:
            click.echo(f"lockstep: warning: no host {name!r} is registered", err=True)
    return forgotten


def hosts_table(broker: BrokerURL, fmt: str) -> str:
    from worker.registry import all_hosts

    broker.ping()
    infos = all_hosts(broker.client())
    if fmt == "json":
        import json

        return json.dumps([i.model_dump(mode="json") for i in infos], indent=2) + "\n"
    import io

    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{len(infos)} registered host(s)", title_justify="left")
    for column in ("host", "platform", "environments", "default", "version", "last seen", "state"):
        table.add_column(column, overflow="fold")
    now = time.time()
    for i in infos:
        envs = ", ".join(f"{n}={p}" for n, p in i.environments.items())
        table.add_row(
            i.host,
            i.platform,
            envs,
            i.default_environment or "",
            i.lockstep_version,
            f"{max(0, now - i.last_seen):.0f} s ago",
            i.state,
        )
    buf = io.StringIO()
    Console(file=buf, width=140, no_color=not sys.stdout.isatty()).print(table)
    return buf.getvalue()

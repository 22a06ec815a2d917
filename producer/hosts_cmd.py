"""`lockstep hosts` and `lockstep dead-letters`: what the registry and the quarantine hold.

A host whose worker refused messages keeps serving, so nothing else would show that someone
is writing garbage (or unsigned tasks) to its queue: the count sits next to each host, and
`dead-letters` shows why each item was refused, when, and its first bytes. The bytes are the
refused item's own, never anything of lockstep's configuration.
"""

from __future__ import annotations

import io
import json
import sys
import time
from collections.abc import Iterable, Sequence

import click

from worker.broker import BrokerURL

HOST_COLUMNS = (
    "host",
    "platform",
    "environments",
    "default",
    "version",
    "last seen",
    "state",
    "instance",
    "dead letters",
)


def forget_hosts(broker: BrokerURL, names: tuple[str, ...]) -> list[str]:
    """Drop registry entries, pending messages and dead letters of hosts gone for good."""
    from producer import known_hosts
    from worker import deadletter
    from worker.registry import forget, host_key, queue_name

    broker.ping()
    client = broker.client()
    remembered = known_hosts.known_hosts(client)
    forgotten = []
    for name in names:
        traces = (host_key(name), queue_name(name), deadletter.deadletter_key(name))
        if client.exists(*traces) or name in remembered:
            forget(client, name)
            client.delete(queue_name(name), deadletter.deadletter_key(name))
            forgotten.append(name)
        else:
            click.echo(f"lockstep: warning: no host {name!r} is registered", err=True)
    known_hosts.forget(client, forgotten)
    return forgotten


def hosts_table(broker: BrokerURL, fmt: str) -> str:
    from worker import deadletter
    from worker.registry import all_hosts

    broker.ping()
    client = broker.client()
    infos = all_hosts(client)
    letters = deadletter.counts(client, [i.host for i in infos])
    if fmt == "json":
        rows = [
            {**i.model_dump(mode="json"), "dead_letters": letters.get(i.host, 0)} for i in infos
        ]
        return json.dumps(rows, indent=2) + "\n"
    now = time.time()
    rows_text = [
        [
            i.host,
            i.platform,
            ", ".join(f"{n}={p}" for n, p in i.environments.items()),
            i.default_environment or "",
            i.lockstep_version,
            f"{max(0, now - i.last_seen):.0f} s ago",
            i.state,
            i.instance[:12],
            str(letters.get(i.host, 0)),
        ]
        for i in infos
    ]
    return _render(f"{len(infos)} registered host(s)", HOST_COLUMNS, rows_text)


def dead_letters(broker: BrokerURL, hosts: Sequence[str], fmt: str, clear: bool) -> str:
    """The dead letters of `hosts` (default: every host that has any), optionally cleared."""
    from worker import deadletter

    broker.ping()
    client = broker.client()
    names = list(hosts) or deadletter.hosts_with_letters(client)
    found = {name: deadletter.entries(client, name) for name in names}
    if clear:
        for name in names:
            deadletter.clear(client, name)
            click.echo(f"lockstep: cleared {len(found[name])} dead letter(s) of {name}", err=True)
    if fmt == "json":
        rows = [
            {
                "host": name,
                "time": letter.time,
                "reason": letter.reason,
                "audit": letter.audit,
                "size": letter.size,
                "head": _printable(letter.head()),
            }
            for name, letters in found.items()
            for letter in letters
        ]
        return json.dumps(rows, indent=2) + "\n"
    total = sum(len(v) for v in found.values())
    return _render(
        f"{total} dead letter(s)",
        ("host", "time", "reason", "audit", "bytes", "first bytes"),
        [
            [
                name,
                _when(letter.time),
                letter.reason,
                letter.audit or "",
                str(letter.size),
                _printable(letter.head()),
            ]
            for name, letters in found.items()
            for letter in letters
        ],
    )


def _printable(data: bytes) -> str:
    """Control bytes and non-UTF-8 escaped, so a hostile item cannot drive the terminal."""
    text = data.decode("utf-8", errors="backslashreplace")
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _when(epoch: float) -> str:
    if not epoch:
        return "?"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))


def _render(title: str, columns: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(title=Text(title), title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))  # Text: user strings are never markup
    buf = io.StringIO()
    Console(
        file=buf,
        width=160,
        no_color=not sys.stdout.isatty(),
        markup=False,
        emoji=False,
        highlight=False,
    ).print(table)
    return buf.getvalue()

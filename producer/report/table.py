"""The terminal report.

One host: its findings grouped by kind, because that is what a person fixes. Several
hosts: statuses first (problems on top; OK hosts folded into a count past a screenful),
then the package matrix, because across a fleet the question is "who has what".

Nearly every string here comes from outside (prefix paths, environment and host names,
package names, error messages), and rich would read `[prod]` or `envs/x[/y]` as markup:
dropped silently, or a crash on a stray closing tag. So the console parses no markup at
all and styles are applied with `Text` objects only.
"""

from __future__ import annotations

import io
from collections import defaultdict

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from producer.report.model import Report
from worker.models import Finding, FindingKind, HostReport, Status

STATUS_STYLE = {
    Status.OK: "bold green",
    Status.DRIFT: "bold red",
    Status.ERROR: "bold yellow",
    Status.UNREACHABLE: "bold magenta",
}
_LIST_OK_HOSTS_UP_TO = 30
# What breaks a deploy first: absent or different packages, then pip damage, then extras.
DISPLAY_ORDER = (
    FindingKind.MISSING,
    FindingKind.VERSION,
    FindingKind.BUILD,
    FindingKind.CHANNEL,
    FindingKind.HASH,
    FindingKind.PIP_SHADOWS_CONDA,
    FindingKind.UNLOCKED_PIP,
    FindingKind.EXTRA,
)


def render(report: Report, *, color: bool = False, width: int = 120) -> str:
    buf = io.StringIO()
    console = Console(
        file=buf,
        force_terminal=color,
        no_color=not color,
        width=width,
        highlight=False,
        markup=False,
        emoji=False,
    )
    _header(console, report)
    if len(report.hosts) == 1:
        _single_host(console, report.hosts[0])
    else:
        _hosts(console, report.hosts)
        _matrix(console, report)
    _footer(console, report)
    return buf.getvalue()


def _header(console: Console, report: Report) -> None:
    if report.lock:
        lk = report.lock
        env = f", environment {lk.environment}" if lk.environment else ""
        console.print(
            Text.assemble(
                ("lock", "bold"),
                f" {lk.source}  ",
                (f"({lk.format}, {lk.kind}, {lk.platform}{env}, {lk.packages} packages)", "dim"),
            )
        )


def _single_host(console: Console, host: HostReport) -> None:
    where = f"{host.host}"
    if host.environment:
        where += f" [{host.environment}]"
    if host.prefix:
        where += f"  {host.prefix}"
    console.print(Text.assemble(("host", "bold"), f" {where}"))
    for warning in host.warnings:
        console.print(Text.assemble(("warning:", "yellow"), f" {warning}"), soft_wrap=True)
    if host.status is Status.ERROR or host.status is Status.UNREACHABLE:
        console.print(
            Text.assemble((host.status.value, STATUS_STYLE[host.status]), f": {host.error}")
        )
        return
    by_kind: dict[FindingKind, list[Finding]] = defaultdict(list)
    for f in host.findings:
        by_kind[f.kind].append(f)
    for kind in DISPLAY_ORDER:
        found = by_kind.get(kind)
        if not found:
            continue
        table = Table(
            title=f"{kind.value} ({len(found)})",
            title_justify="left",
            box=box.SIMPLE_HEAD,
            title_style="bold",
        )
        for column in ("package", "expected", "actual", "why"):
            table.add_column(column, overflow="fold")
        for f in found:
            name = f.name if f.manager == "conda" else f"{f.name} (pypi)"
            table.add_row(name, f.expected or "—", f.actual or "—", f.message)
        console.print(table)


def _hosts(console: Console, hosts: list[HostReport]) -> None:
    table = Table(box=box.SIMPLE_HEAD, title="hosts", title_justify="left", title_style="bold")
    for column in ("host", "env", "status", "findings", "detail"):
        table.add_column(column, overflow="fold")
    problems = [h for h in hosts if h.status is not Status.OK]
    ok = [h for h in hosts if h.status is Status.OK]
    shown = problems + (ok if len(hosts) <= _LIST_OK_HOSTS_UP_TO else [])
    for h in shown:
        detail = h.error or (f"{h.packages} packages" if h.status is Status.OK else "")
        table.add_row(
            h.host,
            h.environment or "",
            Text(h.status.value, STATUS_STYLE[h.status]),
            str(len(h.findings)) if h.findings else "",
            detail,
        )
    if len(shown) < len(hosts):
        table.add_row(f"… {len(ok)} more", "", Text("OK", STATUS_STYLE[Status.OK]), "", "")
    console.print(table)


def _matrix(console: Console, report: Report) -> None:
    if not report.matrix:
        return
    table = Table(
        box=box.SIMPLE_HEAD, title="packages that differ", title_justify="left", title_style="bold"
    )
    for column in ("package", "expected", "finding", "actual", "hosts"):
        table.add_column(column, overflow="fold")
    for row in report.matrix:
        for i, v in enumerate(row.variants):
            name = row.name if row.manager == "conda" else f"{row.name} (pypi)"
            hosts = ", ".join(v.hosts[:8]) + (f" … +{len(v.hosts) - 8}" if len(v.hosts) > 8 else "")
            table.add_row(
                name if i == 0 else "",
                (row.expected or "—") if i == 0 else "",
                v.kind.value,
                v.actual,
                f"{len(v.hosts)}: {hosts}",
            )
    console.print(table)


def _footer(console: Console, report: Report) -> None:
    s = report.summary
    parts = [
        Text(f"{s.ok} OK", STATUS_STYLE[Status.OK]),
        Text(f"{s.drift} DRIFT", STATUS_STYLE[Status.DRIFT]),
        Text(f"{s.error} ERROR", STATUS_STYLE[Status.ERROR]),
        Text(f"{s.unreachable} UNREACHABLE", STATUS_STYLE[Status.UNREACHABLE]),
    ]
    line = Text(f"{s.targeted} host(s): ")
    for i, part in enumerate(parts):
        line.append_text(part)
        if i < len(parts) - 1:
            line.append(", ")
    line.append(f"; {s.findings} finding(s)")
    console.print(line)

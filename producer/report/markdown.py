"""Markdown for a pull-request comment: status first, then the package matrix."""

from __future__ import annotations

from producer.report.model import Report
from worker.models import Status

_ICON = {Status.OK: "✅", Status.DRIFT: "❌", Status.ERROR: "⚠️", Status.UNREACHABLE: "❔"}


def _cell(text: str | None) -> str:
    return (text or "—").replace("|", "\\|").replace("\n", " ")


def render(report: Report) -> str:
    s = report.summary
    lines = ["## lockstep"]
    if report.lock:
        lines.append(
            f"Lock `{report.lock.source}` ({report.lock.format}, {report.lock.platform}): "
            f"{s.targeted} host(s) — {s.ok} OK, {s.drift} DRIFT, {s.error} ERROR, "
            f"{s.unreachable} UNREACHABLE."
        )
    lines += ["", "| host | status | findings | note |", "|---|---|---|---|"]
    for h in report.hosts:
        note = h.error or (f"{h.packages} packages" if h.status is Status.OK else "")
        lines.append(
            f"| {_cell(h.host)} | {_ICON[h.status]} {h.status.value} | {len(h.findings)} | "
            f"{_cell(note)} |"
        )
    if report.matrix:
        lines += [
            "",
            "### Packages that differ",
            "",
            "| package | expected | actual | hosts |",
            "|---|---|---|---|",
        ]
        for row in report.matrix:
            for i, v in enumerate(row.variants):
                lines.append(
                    f"| {_cell(row.name) if i == 0 else ''} | "
                    f"{_cell(row.expected) if i == 0 else ''} | "
                    f"{v.kind.value}: {_cell(v.actual)} | {_cell(', '.join(v.hosts))} |"
                )
    return "\n".join(lines) + "\n"

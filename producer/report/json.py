"""Machine-readable report; its schema is documented in the README (`lockstep.report/1`)."""

from __future__ import annotations

from producer.report.model import Report


def render(report: Report) -> str:
    return report.model_dump_json(by_alias=True, indent=2) + "\n"

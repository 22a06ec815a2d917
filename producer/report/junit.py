"""JUnit XML so CI systems show each host as a test and each finding as a failure.

UNREACHABLE and ERROR hosts are `<error>`s, not failures: the host was not verified, which
CI systems display differently from a verified drift.

ElementTree escapes `<` and `&` but writes control characters as they are, which makes the
whole file unreadable XML; host names and error messages (a conda stderr with colour codes)
can hold them, so every text passes through `_xml_text` first.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from producer.report.model import Report
from worker.models import Status


def render(report: Report) -> str:
    suites = ET.Element("testsuites", name="lockstep")
    suite = ET.SubElement(
        suites,
        "testsuite",
        name=_xml_text(f"lockstep: {report.lock.source}") if report.lock else "lockstep",
        tests=str(report.summary.targeted),
        failures=str(report.summary.drift),
        errors=str(report.summary.error + report.summary.unreachable),
        skipped="0",
        timestamp=_iso(report.generated_at),
    )
    for host in report.hosts:
        name = host.host if not host.environment else f"{host.host} [{host.environment}]"
        case = ET.SubElement(suite, "testcase", classname="lockstep.hosts", name=_xml_text(name))
        if host.duration_ms is not None:
            case.set("time", f"{host.duration_ms / 1000:.3f}")
        if host.status is Status.DRIFT:
            for f in host.findings:
                failure = ET.SubElement(
                    case,
                    "failure",
                    type=f.kind.value,
                    message=_xml_text(
                        f"{f.kind.value} {f.name}: expected {f.expected or '-'}, "
                        f"found {f.actual or '-'}"
                    ),
                )
                failure.text = _xml_text(f.message)
        elif host.status in (Status.ERROR, Status.UNREACHABLE):
            error = ET.SubElement(
                case,
                "error",
                type=host.status.value,
                message=_xml_text(host.error or host.status.value),
            )
            error.text = _xml_text(host.error or "")
        if host.warnings:
            ET.SubElement(case, "system-out").text = _xml_text("\n".join(host.warnings))
    ET.indent(suites)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"


# Characters XML 1.0 does not allow at all: C0 controls but tab/LF/CR, surrogates, U+FFFE/F.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _xml_text(text: str) -> str:
    return _NOT_XML.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def _iso(epoch: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(epoch, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")

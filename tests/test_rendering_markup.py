"""User strings reach the terminal table literally: rich markup in them is never parsed.

`envs/x[/y]` once crashed the table with a MarkupError (a closing tag with no opening one,
exit 1 as if drift had been found) and `[prod]` vanished from the single-host header.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner

from producer.cli import main
from producer.report import junit, markdown, table
from producer.report.model import build_report
from tests.support import condafactory as cf
from tests.support import lockfiles
from worker.models import Finding, FindingKind, HostReport, Status

MARKUP = ["[/x]", "[prod]", "[bold red]loud[/]", "[link=http://x]y", ":warning:", "a[/b]c"]


@pytest.mark.parametrize("name", ["envs/x[/y]", "envs/[prod]", "envs/[bold]b[/bold]"])
def test_a_local_check_of_a_prefix_with_brackets_prints_its_path(
    name: str, make_prefix: cf.PrefixFactory, conda_channel: cf.Channel, tmp_path: Path
) -> None:
    prefix = make_prefix(name=name)
    lock = tmp_path / "conda-lock.yml"
    lock.write_text(lockfiles.conda_lock({"linux-64": prefix}))
    for color in (False, True):
        result = CliRunner().invoke(
            main, ["check", "--local", "-p", str(prefix), "--lock", str(lock)], color=color
        )
        assert result.exit_code == 0, result.stderr
        assert f"  {prefix}\n" in result.stdout
    cf.replace_packages(conda_channel, ["numpy ==1.26.5"], prefix)
    result = CliRunner().invoke(main, ["check", "--local", "-p", str(prefix), "--lock", str(lock)])
    assert result.exit_code == 1, result.stderr
    assert "VERSION (1)" in result.stdout and str(prefix) in result.stdout


def host(name: str, status: Status, **fields: object) -> HostReport:
    return HostReport.model_validate({"host": name, "status": status, **fields})


def test_single_host_header_keeps_the_environment_in_brackets() -> None:
    report = build_report(None, [host("web-1", Status.OK, environment="prod", prefix="/o[/p]")])
    for color in (False, True):
        out = table.render(report, color=color)
        assert "web-1 [prod]  /o[/p]" in out.replace("\x1b[0m", "").replace("\x1b[1m", "")


@pytest.mark.parametrize("text", MARKUP)
def test_every_user_string_in_the_fleet_table_is_literal(text: str) -> None:
    finding = Finding(
        kind=FindingKind.VERSION,
        name=f"pkg{text}",
        expected=f"1.0{text}",
        actual=f"2.0{text}",
        message=f"why{text}",
    )
    hosts = [
        host(f"h1{text}", Status.DRIFT, environment=text, findings=[finding]),
        host(f"h2{text}", Status.ERROR, environment=text, error=f"boom {text}"),
        host(f"h3{text}", Status.UNREACHABLE, environment=text, error=f"gone {text}"),
    ]
    out = table.render(build_report(None, hosts), width=400)
    for expected in (f"h1{text}", f"boom {text}", f"pkg{text}", f"1.0{text}", f"2.0{text}"):
        assert expected in out, expected
    assert out.count(f" {text} ") >= 3  # the env column of each host

    single = table.render(build_report(None, hosts[:1]), width=400)
    assert f"h1{text} [{text}]" in single
    assert f"why{text}" in single
    error = table.render(build_report(None, hosts[1:2]), width=400)
    assert f"ERROR: boom {text}" in error


def test_warnings_with_brackets_are_printed_as_they_are() -> None:
    report = build_report(None, [host("h", Status.OK, warnings=["conda-meta/[x].json: odd [/]"])])
    assert "warning: conda-meta/[x].json: odd [/]" in table.render(report)


def test_junit_and_markdown_carry_odd_strings_safely() -> None:
    nasty = "a|b\nc\x1b[31m\x00<&>[/x]"
    report = build_report(
        None,
        [
            host(nasty, Status.ERROR, environment=nasty, error=nasty),
            host("h2", Status.OK),
        ],
    )
    root = ET.fromstring(junit.render(report).split("\n", 1)[1])
    names = [case.get("name") or "" for case in root.iter("testcase")]
    assert names[0].startswith("a|b\nc\\x1b[31m\\x00<&>[/x]")
    md = markdown.render(report)
    assert "a\\|b c" in md

"""Pure pieces of the CLI: host patterns, inventory files, --format/--output pairing."""

from __future__ import annotations

from pathlib import Path

import pytest

from producer.fleet import match_hosts
from producer.inventory import InventoryError, load_inventory
from producer.outputs import Destination, pair_destinations
from producer.report.model import build_report, exit_code_for
from worker.models import Finding, FindingKind, HostReport, Status

KNOWN = ["web-1", "web-2", "web-10", "db-1", "gpu-a"]


def test_globs_select_registered_hosts_and_literals_are_kept() -> None:
    hosts, unmatched = match_hosts(["web-?", "db-1,new-host", "cache-*"], KNOWN)
    assert hosts == ["web-1", "web-2", "db-1", "new-host"]
    assert unmatched == ["cache-*"]


def test_toml_and_yaml_inventories(tmp_path: Path) -> None:
    toml = tmp_path / "fleet.toml"
    toml.write_text(
        '[groups.web]\nhosts = ["web-*"]\nlock = "web.yml"\nenv = "prod"\n'
        '[groups.db]\nhosts = "db-1"\n'
    )
    groups = load_inventory(toml)
    assert groups["web"].hosts == ("web-*",) and groups["web"].lock == tmp_path / "web.yml"
    assert groups["web"].env == "prod" and groups["db"].hosts == ("db-1",)
    yml = tmp_path / "fleet.yml"
    yml.write_text("groups:\n  gpu:\n    - gpu-*\n  web:\n    hosts: [web-1]\n")
    groups = load_inventory(yml)
    assert groups["gpu"].hosts == ("gpu-*",) and groups["web"].lock is None


@pytest.mark.parametrize(
    "name, text, where",
    [
        ("a.toml", "[groups.web]\nhosts = [\n", "a.toml:"),
        ("b.yml", "groups:\n  web: {hosts: [\n", "b.yml:"),
        ("c.yml", "hosts: [a]\n", "c.yml:1: expected a top-level 'groups'"),
        ("d.yml", "groups:\n  web:\n    lock: x\n", "d.yml:2: group 'web' needs 'hosts'"),
    ],
)
def test_bad_inventories_name_file_and_line(
    tmp_path: Path, name: str, text: str, where: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(InventoryError) as err:
        load_inventory(path)
    assert str(err.value).startswith(str(tmp_path / where))


def test_format_output_pairing_follows_the_command_line() -> None:
    args = [
        "--lock",
        "x",
        "--format",
        "junit",
        "--output",
        "r.xml",
        "--format",
        "table",
        "-f",
        "json",
        "-o",
        "r.json",
        "--output",
        "r.md",
        "--format=markdown",
    ]
    assert pair_destinations(args) == [
        Destination("junit", Path("r.xml")),
        Destination("table", None),
        Destination("json", Path("r.json")),
        Destination("markdown", Path("r.md")),  # a second --output: format from its suffix
        Destination("markdown", None),
    ]
    assert pair_destinations(["--format=json"]) == [Destination("json", None)]
    assert pair_destinations([]) == [Destination("table", None)]
    assert pair_destinations(["--output", "out.xml"]) == [Destination("junit", Path("out.xml"))]


def host(name: str, status: Status, *findings: Finding) -> HostReport:
    return HostReport(host=name, status=status, findings=list(findings))


def test_exit_codes_follow_the_contract() -> None:
    drift = Finding(kind=FindingKind.VERSION, name="numpy", expected="1", actual="2")
    assert exit_code_for([host("a", Status.OK)]) == 0
    assert exit_code_for([host("a", Status.OK), host("b", Status.DRIFT, drift)]) == 1
    assert exit_code_for([host("a", Status.DRIFT, drift), host("b", Status.UNREACHABLE)]) == 1
    assert exit_code_for([host("a", Status.OK), host("b", Status.UNREACHABLE)]) == 3
    assert exit_code_for([host("a", Status.ERROR)]) == 3
    assert exit_code_for([]) == 3


def test_matrix_groups_hosts_by_what_they_have() -> None:
    def v(actual: str) -> Finding:
        return Finding(kind=FindingKind.VERSION, name="numpy", expected="1.26.4", actual=actual)

    report = build_report(
        None,
        [
            host("a", Status.DRIFT, v("1.26.5")),
            host("b", Status.DRIFT, v("1.26.5")),
            host("c", Status.DRIFT, v("2.0")),
            host("d", Status.OK),
        ],
    )
    (row,) = report.matrix
    assert row.expected == "1.26.4"
    assert [(x.actual, x.hosts) for x in row.variants] == [("1.26.5", ["a", "b"]), ("2.0", ["c"])]


def test_table_shows_every_finding_kind() -> None:
    from producer.report.table import DISPLAY_ORDER

    assert sorted(DISPLAY_ORDER) == sorted(FindingKind)

"""Issue 6, item 11: smaller ways the CLI used to misreport, each through the real CLI.

A pinned environment.yml read as a full lock, a forced format relabelling another format's
file, two renderings concatenated on standard output, and a demo that only ran from the
checkout (and called missing examples an infrastructure failure).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from producer.cli import main
from producer.locks.detect import load_lock
from producer.locks.interface import LockError
from producer.locks.signatures import HEAD_LIMIT
from tests.support import condafactory as cf
from tests.support import lockfiles
from worker.models import LockKind

ROOT = Path(__file__).resolve().parent.parent


def check(*args: str) -> tuple[int, dict[str, Any] | None, str]:
    result = CliRunner().invoke(main, ["check", "--local", *args, "--format", "json"])
    report = json.loads(result.stdout) if result.stdout.strip() else None
    return result.exit_code, report, result.stderr


def finding_kinds(report: dict[str, Any] | None) -> set[tuple[str, str]]:
    assert report is not None
    (host,) = report["hosts"]
    return {(f["kind"], f["name"]) for f in host["findings"]}


def pinned_environment_yml(prefix: Path, *, leave_out: str, prefix_key: bool) -> str:
    """Every conda package of `prefix` but one as `name=version=build`, as an export writes."""
    lines = ["name: prod", "channels:", "  - local", "dependencies:"]
    for record in lockfiles.records(prefix):
        if record["name"] != leave_out:
            lines.append(f"  - {record['name']}={record['version']}={record['build']}")
    if prefix_key:
        lines.append(f"prefix: {prefix}")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------- environment.yml pinned


def test_pinned_environment_yml_is_still_a_spec_file(
    make_prefix: cf.PrefixFactory, tmp_path: Path
) -> None:
    prefix = make_prefix()
    lock = tmp_path / "environment.yml"
    lock.write_text(pinned_environment_yml(prefix, leave_out="tzdata", prefix_key=False))
    assert load_lock(lock, platform="linux-64").kind is LockKind.SPEC
    code, report, err = check("-p", str(prefix), "--lock", str(lock))
    assert code == 0, err
    assert report is not None and report["lock"]["format"] == "environment-yml"
    code, report, err = check("-p", str(prefix), "--lock", str(lock), "--strict")
    assert code == 1, err
    assert finding_kinds(report) == {("EXTRA", "tzdata")}


def test_a_real_export_or_a_forced_golden_format_is_a_full_lock(
    make_prefix: cf.PrefixFactory, tmp_path: Path
) -> None:
    prefix = make_prefix()
    export = tmp_path / "environment.yml"
    export.write_text(pinned_environment_yml(prefix, leave_out="tzdata", prefix_key=True))
    code, report, err = check("-p", str(prefix), "--lock", str(export))
    assert code == 1, err
    assert report is not None and report["lock"]["format"] == "golden"
    assert finding_kinds(report) == {("EXTRA", "tzdata")}

    spec = tmp_path / "spec.yml"
    spec.write_text(pinned_environment_yml(prefix, leave_out="tzdata", prefix_key=False))
    code, report, err = check("-p", str(prefix), "--lock", str(spec), "--lock-format", "golden")
    assert code == 1, err
    assert finding_kinds(report) == {("EXTRA", "tzdata")}


def test_an_export_whose_prefix_key_lies_past_the_sniffed_head_is_still_an_export(
    tmp_path: Path,
) -> None:
    count = HEAD_LIMIT // 20
    deps = "".join(f"  - pkg-{i}=1.0=h{i}_0\n" for i in range(count))
    text = f"name: big\ndependencies:\n{deps}prefix: /opt/conda/envs/big\n"
    assert text.index("prefix:") > HEAD_LIMIT
    path = tmp_path / "environment.yml"
    path.write_text(text)
    lock = load_lock(path, platform="linux-64")
    assert (lock.format, lock.kind) == ("golden", LockKind.FULL)
    path.write_text(text.replace("prefix: /opt/conda/envs/big\n", ""))
    assert load_lock(path, platform="linux-64").kind is LockKind.SPEC


# --------------------------------------------------------- forced format of another file


def test_forcing_pixi_on_a_conda_lock_file_is_refused(
    make_prefix: cf.PrefixFactory, tmp_path: Path
) -> None:
    prefix = make_prefix()
    lock = tmp_path / "conda-lock.yml"
    lock.write_text(lockfiles.conda_lock({"linux-64": prefix}))
    code, report, err = check("-p", str(prefix), "--lock", str(lock), "--lock-format", "pixi")
    assert (code, report) == (2, None)
    assert err == (
        f"lockstep: error: {lock}:1: this is a conda-lock file, not pixi: "
        "pass --lock-format conda-lock or leave the format out\n"
    )
    code, _, err = check("-p", str(prefix), "--lock", str(lock), "--lock-format", "conda-lock")
    assert code == 0, err


# ------------------------------------------------------------ two formats on stdout


@pytest.mark.parametrize(
    "formats",
    [["-f", "json", "-f", "table"], ["--format", "markdown", "--format=junit"]],
)
def test_two_formats_on_standard_output_are_a_usage_error_before_any_work(
    formats: list[str], tmp_path: Path
) -> None:
    # Neither the lock nor the prefix exists: the format error must come first.
    missing = str(tmp_path / "nothing")
    for mode in (["--local", "-p", missing], ["--broker", "redis://127.0.0.1:1/0", "--all"]):
        result = CliRunner().invoke(main, ["check", *mode, "--lock", missing, *formats])
        assert result.exit_code == 2, result.output
        assert result.stdout == ""
        assert result.stderr.startswith("lockstep: error: 2 formats asked for on standard output")
        assert "--output FILE" in result.stderr


def test_one_format_on_standard_output_and_others_in_files_is_fine(
    make_prefix: cf.PrefixFactory, tmp_path: Path
) -> None:
    prefix = make_prefix()
    lock = tmp_path / "conda-lock.yml"
    lock.write_text(lockfiles.conda_lock({"linux-64": prefix}))
    report = tmp_path / "report.json"
    result = CliRunner().invoke(
        main,
        [
            *("check", "--local", "-p", str(prefix), "--lock", str(lock)),
            *("-f", "json", "-o", str(report), "-f", "table"),
        ],
    )
    assert result.exit_code == 0, result.stderr
    assert json.loads(report.read_text())["summary"]["ok"] == 1
    assert "1 OK" in result.stdout and not result.stdout.lstrip().startswith("{")


# -------------------------------------------------------------------------------- demo


def test_demo_without_examples_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["demo", "--examples", str(tmp_path)])
    assert result.exit_code == 2
    assert result.stderr == (
        f"lockstep: error: {tmp_path} holds no example environments "
        "(it needs envs/ and conda-lock.yml)\n"
    )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding a non-editable install of this checkout (its wheel, no deps).

    The test interpreter's site-packages supply the dependencies through a .pth file (a
    `--system-site-packages` venv would see the base Python's, not theirs); lines of a .pth
    are not themselves site directories, so the editable install's finder stays out and
    only the installed copy can be imported.
    """
    where = tmp_path_factory.mktemp("wheel-install")
    env = where / "venv"
    venv.create(env, with_pip=False)
    python = env / "bin" / "python"
    site = next((env / "lib").glob("python3*/site-packages"))
    deps = [p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir()]
    (site / "lockstep-test-deps.pth").write_text("\n".join(deps) + "\n")
    wheels = where / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = wheels.glob("lockstep-*.whl")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(site),
            str(wheel),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return python


def run_installed(python: Path, code: str, cwd: Path) -> str:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [str(python), "-c", code],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return result.stdout


def test_the_wheel_holds_every_module_of_the_tree(installed: Path, tmp_path: Path) -> None:
    site = Path(
        run_installed(installed, "import producer, pathlib; print(producer.__file__)", tmp_path)
    ).parent.parent
    assert not str(site).startswith(str(ROOT)), "the checkout, not the install, was imported"
    for package in ("producer", "worker"):
        tree = {p.relative_to(ROOT) for p in (ROOT / package).rglob("*.py")}
        shipped = {p.relative_to(site) for p in (site / package).rglob("*.py")}
        assert tree - shipped == set(), "add the missing subpackage to pyproject's packages"


def test_an_installed_demo_finds_its_examples_from_any_directory(
    installed: Path, tmp_path: Path
) -> None:
    found = run_installed(
        installed, "from producer.demo import find_examples; print(find_examples(None))", tmp_path
    ).strip()
    assert found.endswith("lockstep_examples") and not found.startswith(str(ROOT))
    assert (Path(found) / "envs" / "prod-drifted" / "conda-meta").is_dir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [str(installed), "-m", "producer.cli", "demo", "--timeout", "3"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "2 OK, 1 DRIFT, 0 ERROR, 1 UNREACHABLE" in result.stdout
    assert "would exit 1" in result.stderr


@pytest.mark.parametrize(
    ("name", "content", "fmt", "found"),
    [
        (
            "pixi.lock",
            "version: 6\nenvironments:\n  default: {}\npackages: []\n",
            "conda-lock",
            "pixi",
        ),
        ("x.txt", "# platform: linux-64\n@EXPLICIT\n", "golden", "explicit"),
        ("list.json", '[{"name": "a", "version": "1"}]\n', "environment-yml", "golden"),
        ("export.txt", "a=1=b\n", "explicit", "golden"),
    ],
)
def test_any_forced_format_of_another_known_format_is_refused_at_line_1(
    name: str, content: str, fmt: str, found: str, tmp_path: Path
) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(LockError) as info:
        load_lock(path, fmt=fmt, platform="linux-64")
    assert str(info.value).startswith(f"{path}:1: this is a {found} file, not {fmt}")

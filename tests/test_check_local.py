"""`lockstep check --local` end to end on real installed prefixes, every lock format.

Each test installs a genuine prefix from the local channel, writes its lock in one format the
way the real tool would, drifts the prefix the way reality does, and runs the real CLI.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from producer.cli import main
from tests.support import condafactory as cf
from tests.support import lockfiles

DATA = Path(__file__).parent / "data"
LockWriter = Callable[[Path, Path], Path]


def run(*args: str) -> tuple[int, dict[str, Any] | None, str]:
    result = CliRunner().invoke(main, ["check", "--local", *args, "--format", "json"])
    try:
        report = json.loads(result.stdout) if result.stdout.strip() else None
    except json.JSONDecodeError:
        report = None
    return result.exit_code, report, result.stderr


def findings(report: dict[str, Any] | None) -> list[tuple[str, str]]:
    assert report is not None
    (host,) = report["hosts"]
    return [(f["kind"], f["name"]) for f in host["findings"]]


def write_conda_lock(prefix: Path, dest: Path) -> Path:
    path = dest / "conda-lock.yml"
    path.write_text(lockfiles.conda_lock({"linux-64": prefix}))
    return path


def write_explicit(prefix: Path, dest: Path) -> Path:
    path = dest / "explicit.txt"
    path.write_text(lockfiles.explicit(prefix, hash_form="sha256:"))
    return path


def write_pixi(prefix: Path, dest: Path) -> Path:
    path = dest / "pixi.lock"
    lockfiles.pixi_lock(prefix, path)
    return path


def write_golden_json(prefix: Path, dest: Path) -> Path:
    path = dest / "golden.json"
    path.write_text(lockfiles.golden_json(prefix))
    return path


def write_golden_export(prefix: Path, dest: Path) -> Path:
    path = dest / "golden.txt"
    path.write_text(lockfiles.golden_export(prefix))
    return path


def write_environment_yml(prefix: Path, dest: Path) -> Path:
    path = dest / "environment.yml"
    path.write_text(
        lockfiles.environment_yml(
            ["python=3.11", "numpy 1.26.4", "pandas>=2.2,<3", "openssl 3.3.1 h4ab18f5_0", "tzdata"]
        )
    )
    return path


WRITERS: dict[str, LockWriter] = {
    "conda-lock": write_conda_lock,
    "explicit": write_explicit,
    "pixi": write_pixi,
    "golden-json": write_golden_json,
    "golden-export": write_golden_export,
    "environment-yml": write_environment_yml,
}


@pytest.mark.parametrize("fmt", list(WRITERS))
def test_each_format_clean_then_drifted(
    fmt: str, make_prefix: cf.PrefixFactory, conda_channel: cf.Channel, tmp_path: Path
) -> None:
    prefix = make_prefix()
    lock = WRITERS[fmt](prefix, tmp_path)
    code, report, err = run("-p", str(prefix), "--lock", str(lock))
    assert code == 0, err
    assert findings(report) == []
    cf.replace_packages(conda_channel, ["numpy ==1.26.5"], prefix)
    code, report, err = run("-p", str(prefix), "--lock", str(lock))
    assert code == 1, err
    assert findings(report) == [("VERSION", "numpy")]


@pytest.mark.parametrize(
    "drift, expected",
    [
        ("version", [("VERSION", "numpy")]),
        ("build", [("BUILD", "numpy")]),
        ("missing", [("MISSING", "tzdata")]),
        ("extra", [("EXTRA", "zstd")]),
        ("channel", [("CHANNEL", "numpy")]),
        ("pip-over-conda", [("PIP_SHADOWS_CONDA", "requests")]),
        ("pip-only", [("UNLOCKED_PIP", "leftpad")]),
    ],
)
def test_each_drift_gives_exactly_its_finding(
    drift: str,
    expected: list[tuple[str, str]],
    make_prefix: cf.PrefixFactory,
    conda_channel: cf.Channel,
    other_channel: cf.Channel,
    tmp_path: Path,
) -> None:
    prefix = make_prefix()
    lock = write_conda_lock(prefix, tmp_path)
    if drift == "version":
        cf.replace_packages(conda_channel, ["numpy ==1.26.5"], prefix)
    elif drift == "build":
        cf.replace_packages(conda_channel, ["numpy ==1.26.4 py311h0000000_1"], prefix)
    elif drift == "missing":
        cf.remove_package(prefix, "tzdata")
    elif drift == "extra":
        cf.replace_packages(conda_channel, ["zstd"], prefix)
    elif drift == "channel":
        cf.replace_packages(other_channel, ["numpy ==1.26.4 py311h64a7726_0"], prefix)
    elif drift == "pip-over-conda":
        cf.add_pip_package(prefix, "requests", "2.32.4", shadow=True)
    elif drift == "pip-only":
        cf.add_pip_package(prefix, "leftpad", "1.0")
    code, report, err = run("-p", str(prefix), "--lock", str(lock))
    assert code == 1, err
    assert findings(report) == expected


def test_hash_drift(make_prefix: cf.PrefixFactory, tmp_path: Path) -> None:
    prefix = make_prefix()
    lock = write_conda_lock(prefix, tmp_path)
    text = lock.read_text()
    numpy_sha = next(r["sha256"] for r in lockfiles.records(prefix) if r["name"] == "numpy")
    lock.write_text(text.replace(numpy_sha, "f" * 64))
    code, report, _ = run("-p", str(prefix), "--lock", str(lock))
    assert code == 1
    assert findings(report) == [("HASH", "numpy")]


def test_environment_yml_extras_only_with_strict(
    make_prefix: cf.PrefixFactory, conda_channel: cf.Channel, tmp_path: Path
) -> None:
    prefix = make_prefix()
    cf.add_pip_package(prefix, "leftpad", "1.0")
    lock = tmp_path / "environment.yml"
    lock.write_text(lockfiles.environment_yml(["numpy=1.26", "python 3.11.7"]))
    assert run("-p", str(prefix), "--lock", str(lock))[0] == 0
    code, report, _ = run("-p", str(prefix), "--lock", str(lock), "--strict")
    assert code == 1
    kinds = {k for k, _ in findings(report)}
    assert kinds == {"EXTRA", "UNLOCKED_PIP"}


def test_ignore_and_ignore_build(
    make_prefix: cf.PrefixFactory, conda_channel: cf.Channel, tmp_path: Path
) -> None:
    prefix = make_prefix()
    lock = write_conda_lock(prefix, tmp_path)
    cf.replace_packages(conda_channel, ["numpy ==1.26.4 py311h0000000_1"], prefix)
    cf.remove_package(prefix, "tzdata")
    assert (
        run(
            "-p", str(prefix), "--lock", str(lock), "--ignore-build", "numpy", "--ignore", "tzdata"
        )[0]
        == 0
    )


def test_sample_prefix_against_every_sample_lock() -> None:
    prefix = DATA / "prefix-good-pip"
    locks = [
        DATA / "locks-for-prefix-good-pip" / "conda-lock.yml",
        DATA / "locks-for-prefix-good-pip" / "pixi.lock",
        DATA / "locks-for-prefix-good-pip" / "environment.yml",
        DATA / "prefix-good-pip.conda-list.json",
        DATA / "prefix-good-pip.explicit-md5.txt",
        DATA / "prefix-good-pip.export.txt",
    ]
    # conda-lock.yml, pixi.lock and @EXPLICIT list conda packages only: pip's foo is unlocked;
    # the golden outputs include foo, and environment.yml lists it under pip:.
    knows_foo = {"environment.yml", "prefix-good-pip.conda-list.json", "prefix-good-pip.export.txt"}
    for lock in locks:
        code, report, err = run("-p", str(prefix), "--lock", str(lock))
        expected = [] if lock.name in knows_foo else [("UNLOCKED_PIP", "foo")]
        assert findings(report) == expected, (lock, err)
        assert code == (0 if lock.name in knows_foo else 1)


@pytest.mark.parametrize(
    "prepare, message",
    [
        (lambda p: cf.corrupt_record(p, "numpy"), "corrupt record"),
        (cf.remove_history, "not a conda environment"),
    ],
)
def test_broken_prefix_is_exit_2_with_a_clear_message(
    prepare: Callable[[Path], object], message: str, make_prefix: cf.PrefixFactory, tmp_path: Path
) -> None:
    prefix = make_prefix()
    lock = write_conda_lock(prefix, tmp_path)
    prepare(prefix)
    code, report, err = run("-p", str(prefix), "--lock", str(lock))
    assert code == 2
    assert message in err and "Traceback" not in err
    assert report is not None
    (host,) = report["hosts"]
    assert host["status"] == "ERROR" and message in host["error"]


def test_bad_lock_is_exit_2_with_file_and_line(
    make_prefix: cf.PrefixFactory, tmp_path: Path
) -> None:
    prefix = make_prefix()
    bad = tmp_path / "explicit.txt"
    url = "https://conda.anaconda.org/conda-forge/linux-64/numpy-1.26.4-py_0.conda"
    bad.write_text(f"@EXPLICIT\n{url}\nnot a url\n")
    code, _, err = run("-p", str(prefix), "--lock", str(bad))
    assert code == 2
    assert f"{bad}:3:" in err and "Traceback" not in err


def test_missing_conda_executable_is_exit_2(make_prefix: cf.PrefixFactory, tmp_path: Path) -> None:
    prefix = make_prefix()
    lock = write_conda_lock(prefix, tmp_path)
    code, _, err = run("-p", str(prefix), "--lock", str(lock), "--source", str(tmp_path / "nope"))
    assert code == 2 and "executable not found" in err


def test_named_environment_is_found_in_envs_dirs(
    make_prefix: cf.PrefixFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    prefix = make_prefix(name="prod")
    lock = write_conda_lock(prefix, tmp_path)
    monkeypatch.setenv("CONDA_ENVS_PATH", str(prefix.parent))
    assert run("-n", "prod", "--lock", str(lock))[0] == 0
    code, _, err = run("-n", "nope", "--lock", str(lock))
    assert code == 2 and "environment 'nope' not found" in err


def test_table_output_groups_findings_by_kind(
    make_prefix: cf.PrefixFactory, conda_channel: cf.Channel, tmp_path: Path
) -> None:
    prefix = make_prefix()
    lock = write_conda_lock(prefix, tmp_path)
    cf.replace_packages(conda_channel, ["numpy ==1.26.5"], prefix)
    cf.add_pip_package(prefix, "leftpad", "1.0")
    result = CliRunner().invoke(main, ["check", "--local", "-p", str(prefix), "--lock", str(lock)])
    assert result.exit_code == 1
    out = result.stdout
    assert "VERSION (1)" in out and "UNLOCKED_PIP (1)" in out
    assert out.index("VERSION (1)") < out.index("UNLOCKED_PIP (1)")
    assert "1.26.5" in out and "leftpad" in out and "1 DRIFT" in out


def test_junit_and_markdown_for_a_local_check(
    make_prefix: cf.PrefixFactory, conda_channel: cf.Channel, tmp_path: Path
) -> None:
    import xml.etree.ElementTree as ET

    prefix = make_prefix()
    lock = write_conda_lock(prefix, tmp_path)
    cf.replace_packages(conda_channel, ["numpy ==1.26.5"], prefix)
    junit = tmp_path / "r.xml"
    result = CliRunner().invoke(
        main,
        [
            "check",
            "--local",
            "-p",
            str(prefix),
            "--lock",
            str(lock),
            "-f",
            "junit",
            "-o",
            str(junit),
            "-f",
            "markdown",
        ],
    )
    assert result.exit_code == 1
    failure = ET.parse(junit).getroot().find("testsuite/testcase/failure")
    assert failure is not None and failure.get("type") == "VERSION"
    assert result.stdout.startswith("## lockstep")


def test_local_check_does_not_import_celery(make_prefix: cf.PrefixFactory, tmp_path: Path) -> None:
    prefix = make_prefix()
    lock = write_conda_lock(prefix, tmp_path)
    code = (
        "import sys\n"
        "from producer.cli import main\n"
        f"args = ['check', '--local', '-p', {str(prefix)!r}, '--lock', {str(lock)!r}]\n"
        "try:\n    main(args)\nexcept SystemExit as e:\n    rc = e.code\n"
        "fleet = ('celery', 'kombu', 'redis')\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in fleet)\n"
        "print(rc, heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().endswith("0 []"), out.stdout + out.stderr


def test_snapshot_command_round_trips_as_a_golden_lock(
    make_prefix: cf.PrefixFactory, tmp_path: Path
) -> None:
    prefix = make_prefix()
    cf.add_pip_package(prefix, "leftpad", "1.0")
    golden = tmp_path / "golden.json"
    result = CliRunner().invoke(main, ["snapshot", "-p", str(prefix), "-o", str(golden)])
    assert result.exit_code == 0, result.stderr
    assert run("-p", str(prefix), "--lock", str(golden))[0] == 0
    export = CliRunner().invoke(main, ["snapshot", "-p", str(prefix), "--format", "export"])
    assert "leftpad=1.0=pypi_0" in export.stdout


def test_unwritable_outputs_are_usage_errors_without_traceback(
    make_prefix: cf.PrefixFactory, tmp_path: Path
) -> None:
    prefix = make_prefix()
    lock = write_conda_lock(prefix, tmp_path)
    base = ["check", "--local", "-p", str(prefix), "--lock", str(lock)]
    missing = CliRunner().invoke(main, [*base, "-f", "junit", "-o", str(tmp_path / "no" / "r.xml")])
    assert missing.exit_code == 2 and "does not exist" in missing.stderr
    assert missing.exception is None or isinstance(missing.exception, SystemExit)
    (tmp_path / "r.xml.tmp").mkdir()  # the file is written beside, then renamed: make that fail
    result = CliRunner().invoke(
        main, [*base, "-f", "junit", "-o", str(tmp_path / "r.xml"), "-f", "json"]
    )
    assert result.exit_code == 2 and "cannot write" in result.stderr
    assert isinstance(result.exception, SystemExit)
    assert json.loads(result.stdout)["summary"]["ok"] == 1  # standard output still got it
    snap = CliRunner().invoke(
        main, ["snapshot", "-p", str(prefix), "-o", str(tmp_path / "no" / "x")]
    )
    assert snap.exit_code == 2 and "cannot write" in snap.stderr

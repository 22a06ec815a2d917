"""The conda CLI runner, driven through real subprocesses.

No conda is installed on the test machines, so each test writes a small executable that
behaves like one conda front end (prints conda's real recorded output, micromamba's
object shape, conda's JSON error object, or hangs) and the runner runs it for real.
"""

from __future__ import annotations

import stat
import sys
from pathlib import Path

import pytest

from worker.snapshot.conda_cli import CondaCliSource, parse_list_json
from worker.snapshot.conda_meta import CondaMetaSource
from worker.snapshot.interface import SnapshotError

DATA = Path(__file__).parent / "data"


def tool(tmp_path: Path, name: str, body: str) -> Path:
    exe = tmp_path / name
    exe.write_text(f"#!{sys.executable}\nimport sys, json, time\n{body}\n")
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    return exe


def test_parses_real_conda_output_like_the_meta_reader(tmp_path: Path) -> None:
    recorded = DATA / "prefix-good-pip.conda-list.json"
    exe = tool(
        tmp_path,
        "conda",
        "assert sys.argv[1:4] == ['list', '--json', '-p'], sys.argv\n"
        f"sys.stdout.write(open({str(recorded)!r}).read())",
    )
    snap = CondaCliSource(str(exe)).snapshot(DATA / "prefix-good-pip")
    meta = CondaMetaSource().snapshot(DATA / "prefix-good-pip")

    def key(p: object) -> tuple[object, ...]:
        return tuple(
            getattr(p, f) for f in ("name", "version", "build", "manager", "channel", "subdir")
        )

    assert sorted(map(key, snap.packages)) == sorted(map(key, meta.packages))


def test_micromamba_object_shape_with_hashes(tmp_path: Path) -> None:
    payload = {
        "packages": [
            {
                "base_url": "https://conda.anaconda.org/conda-forge",
                "build_number": 0,
                "build_string": "py311h64a7726_0",
                "channel": "conda-forge",
                "dist_name": "numpy-1.26.4-py311h64a7726_0",
                "name": "numpy",
                "platform": "linux-64",
                "version": "1.26.4",
                "url": "https://conda.anaconda.org/conda-forge/linux-64/numpy-1.26.4-py311h64a7726_0.conda",
                "md5": "6d12cdea26ad3e45abd2239c3697c003",
                "sha256": "a0" * 32,
            }
        ]
    }
    exe = tool(tmp_path, "micromamba", f"print(json.dumps({payload!r}))")
    (pkg,) = CondaCliSource(str(exe)).snapshot(tmp_path).packages
    assert pkg.md5 == "6d12cdea26ad3e45abd2239c3697c003"
    assert pkg.channel == "https://conda.anaconda.org/conda-forge"
    assert pkg.subdir == "linux-64"


def test_conda_json_error_message_is_surfaced(tmp_path: Path) -> None:
    error = {
        "caused_by": "None",
        "error": "EnvironmentLocationNotFound: Not a conda environment: /nope",
        "exception_name": "EnvironmentLocationNotFound",
        "exception_type": "<class 'conda.exceptions.EnvironmentLocationNotFound'>",
        "message": "Not a conda environment: /nope",
    }
    exe = tool(tmp_path, "conda", f"print(json.dumps({error!r})); sys.exit(1)")
    with pytest.raises(SnapshotError) as err:
        CondaCliSource(str(exe)).snapshot(Path("/nope"))
    assert "EnvironmentLocationNotFound: Not a conda environment: /nope" in str(err.value)


def test_timeout_is_an_error_not_a_hang(tmp_path: Path) -> None:
    exe = tool(tmp_path, "conda", "time.sleep(30)")
    with pytest.raises(SnapshotError, match=r"no answer within 0\.5 s"):
        CondaCliSource(str(exe), timeout=0.5).snapshot(tmp_path)


def test_missing_executable_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SnapshotError, match="executable not found"):
        CondaCliSource(str(tmp_path / "no-such-conda")).snapshot(tmp_path)


def test_prefix_with_shell_metacharacters_is_one_argument(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    exe = tool(
        tmp_path,
        "conda",
        "print(json.dumps([{'name': 'x', 'version': sys.argv[4], "
        "'build_string': 'b', 'channel': 'c', 'platform': 'noarch', 'base_url': 'c'}]))",
    )
    evil = f"/tmp/x; touch {marker}"
    (pkg,) = CondaCliSource(str(exe)).snapshot(Path(evil)).packages
    assert pkg.version == evil
    assert not marker.exists()


@pytest.mark.parametrize(
    "text, message",
    [
        ("not json", "not JSON"),
        ('{"a": 1}', "expected a JSON array"),
        ("[1]", "not an object"),
        ('[{"version": "1"}]', "missing or bad field"),
    ],
)
def test_malformed_output_is_a_snapshot_error(text: str, message: str) -> None:
    with pytest.raises(SnapshotError, match=message):
        parse_list_json(text, origin="conda list --json")

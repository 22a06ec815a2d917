"""The conda-meta reader against the real prefix that real conda listed (tests/data)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from worker.snapshot import conda_json
from worker.snapshot.conda_meta import CondaMetaSource
from worker.snapshot.interface import SnapshotError

DATA = Path(__file__).parent / "data"
SAMPLE = DATA / "prefix-good-pip"
SITE = "lib/python3.11/site-packages"


@pytest.fixture
def prefix(tmp_path: Path) -> Path:
    dest = tmp_path / "env"
    shutil.copytree(SAMPLE, dest, symlinks=True)
    return dest


def tree_state(root: Path) -> dict[str, tuple[bytes, int, int]]:
    """Bytes, mtime and mode of every entry: what 'never changes a host' means."""
    state: dict[str, tuple[bytes, int, int]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            st = path.lstat()
            content = path.read_bytes() if path.is_file() and not path.is_symlink() else b""
            state[str(path.relative_to(root))] = (content, st.st_mtime_ns, st.st_mode)
    return state


def test_conda_json_equals_real_conda_output_byte_for_byte() -> None:
    snap = CondaMetaSource().snapshot(SAMPLE)
    expected = (DATA / "prefix-good-pip.conda-list.json").read_text(encoding="utf-8")
    assert conda_json.render(snap) == expected


def test_reads_hashes_channels_and_pip_packages() -> None:
    snap = CondaMetaSource().snapshot(SAMPLE)
    by_name = {p.name: p for p in snap.packages}
    numpy = by_name["numpy"]
    assert numpy.md5 == "6d12cdea26ad3e45abd2239c3697c003"
    assert numpy.sha256 == "a0541940b0e7d508963d19863e91f939dc9993e1e5a3b67df7facac0419f8d17"
    assert numpy.channel == "https://conda.anaconda.org/conda-forge"
    assert numpy.subdir == "linux-64"
    assert by_name["requests"].subdir == "noarch"
    foo = by_name["foo"]
    assert (foo.manager, foo.version, foo.build, foo.channel) == ("pypi", "1.0", "pypi_0", "pypi")
    assert "bar-minimal" not in by_name  # no RECORD: conda skips it, and so do we
    assert any("bar_minimal-0.5.dist-info" in w for w in snap.warnings)
    assert snap.platform == "linux-64"


def test_snapshot_changes_nothing_even_where_conda_list_would_delete(prefix: Path) -> None:
    # conda list deletes the numpy record when its dist-info is gone (conda#14423)
    shutil.rmtree(prefix / SITE / "numpy-1.26.4.dist-info")
    before = tree_state(prefix)
    snap = CondaMetaSource().snapshot(prefix)
    assert tree_state(prefix) == before
    numpy = next(p for p in snap.packages if p.name == "numpy")
    assert numpy.clobbered
    assert "numpy" not in {e["name"] for e in conda_json.conda_list_entries(snap)}


def test_pip_package_shadowing_conda_replaces_it_in_conda_view(prefix: Path) -> None:
    shutil.rmtree(prefix / SITE / "requests-2.32.3.dist-info")
    dist = prefix / SITE / "requests-2.99.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: requests\nVersion: 2.99.0\n")
    (dist / "RECORD").write_text("")
    snap = CondaMetaSource().snapshot(prefix)
    entries = {e["name"]: e for e in conda_json.conda_list_entries(snap)}
    assert entries["requests"]["version"] == "2.99.0"
    assert entries["requests"]["channel"] == "pypi"
    kinds = {(p.name, p.manager, p.clobbered) for p in snap.packages if p.name == "requests"}
    assert kinds == {("requests", "conda", True), ("requests", "pypi", False)}


def test_egg_info_file_and_directory_are_pip_packages(prefix: Path) -> None:
    (prefix / SITE / "Legacy_Pkg-0.3.egg-info").write_text(
        "Metadata-Version: 1.0\nName: Legacy_Pkg\nVersion: 0.3\n"
    )
    eggdir = prefix / SITE / "other.pkg-2.0.egg-info"
    eggdir.mkdir()
    (eggdir / "PKG-INFO").write_text("Name: other.pkg\nVersion: 2.0\n")
    snap = CondaMetaSource().snapshot(prefix)
    pip = {(p.name, p.version) for p in snap.packages if p.manager == "pypi"}
    assert {("legacy-pkg", "0.3"), ("other-pkg", "2.0"), ("foo", "1.0")} <= pip


def test_skips_dot_underscore_files_and_warns_on_misnamed_records(prefix: Path) -> None:
    meta = prefix / "conda-meta"
    (meta / "._numpy-1.26.4-py311h64a7726_0.json").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    shutil.copy(meta / "tzdata-2024a-h0c530f3_0.json", meta / "tzdata-copy.json")
    snap = CondaMetaSource().snapshot(prefix)
    assert [p.name for p in snap.packages].count("tzdata") == 1
    assert any("tzdata-copy.json" in w and "ignored" in w for w in snap.warnings)


def test_corrupt_record_is_an_error_naming_file_and_line(prefix: Path) -> None:
    record = prefix / "conda-meta" / "openssl-3.3.1-h4ab18f5_0.json"
    record.write_text('{\n  "name": "openssl",\n  "version": \n}\n')
    with pytest.raises(SnapshotError) as err:
        CondaMetaSource().snapshot(prefix)
    assert f"{record}:4: corrupt record" in str(err.value)


def test_record_missing_required_field_is_an_error(prefix: Path) -> None:
    record = prefix / "conda-meta" / "openssl-3.3.1-h4ab18f5_0.json"
    data = json.loads(record.read_text())
    del data["build"]
    record.write_text(json.dumps(data))
    with pytest.raises(SnapshotError, match="no 'build' field"):
        CondaMetaSource().snapshot(prefix)


def test_directory_without_history_is_not_an_environment(prefix: Path) -> None:
    (prefix / "conda-meta" / "history").unlink()
    with pytest.raises(SnapshotError, match="not a conda environment"):
        CondaMetaSource().snapshot(prefix)


def test_missing_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SnapshotError, match="no such directory"):
        CondaMetaSource().snapshot(tmp_path / "nope")


def test_prefix_without_python_lists_no_pip_packages(prefix: Path) -> None:
    (prefix / "conda-meta" / "python-3.11.7-h1234_0_cpython.json").unlink()
    snap = CondaMetaSource().snapshot(prefix)
    assert all(p.manager == "conda" for p in snap.packages)


def test_cached_source_sees_every_kind_of_change(prefix: Path) -> None:
    source = CondaMetaSource(cache=True)
    first = source.snapshot(prefix)
    assert source.snapshot(prefix).packages == first.packages
    record = prefix / "conda-meta" / "openssl-3.3.1-h4ab18f5_0.json"
    # same size, same name: only the md5 changes, written in place
    text = record.read_text()
    md5 = json.loads(text)["md5"]
    record.write_text(text.replace(md5, md5[::-1]))
    by_name = {p.name: p for p in source.snapshot(prefix).packages}
    assert by_name["openssl"].md5 == md5[::-1]
    # a pip package appears in site-packages: conda-meta is untouched
    dist = prefix / SITE / "leftpad-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Name: leftpad\nVersion: 1.0\n")
    (dist / "RECORD").write_text("")
    assert "leftpad" in {p.name for p in source.snapshot(prefix).packages}
    # a record disappears
    (prefix / "conda-meta" / "tzdata-2024a-h0c530f3_0.json").unlink()
    assert "tzdata" not in {p.name for p in source.snapshot(prefix).packages}
    # and the result always equals a fresh, uncached read
    assert source.snapshot(prefix) == CondaMetaSource().snapshot(prefix)

"""The factory's packages, channels and prefixes are the real thing, and drift is genuine."""

from __future__ import annotations

import asyncio
import base64
import csv
import hashlib
import io
import json
from pathlib import Path
from typing import Any

import pytest
import rattler
import yaml
from conda_package_handling import api as cph_api
from rattler.exceptions import SolverError

from tests.support import condafactory as cf
from tests.support.condafactory import CLEAN_SPECS, Channel, PackageSpec, PrefixFactory

REPO = Path(__file__).resolve().parent.parent
SAMPLE_PREFIX = REPO / "tests" / "data" / "prefix-good-pip"
EXAMPLES = REPO / "examples"


def _records(prefix: Path) -> dict[str, dict[str, Any]]:
    out = {}
    for path in sorted((prefix / "conda-meta").glob("*.json")):
        record = json.loads(path.read_text())
        out[record["name"]] = record
    return out


def _digests(path: Path) -> tuple[str, str]:
    data = path.read_bytes()
    return hashlib.md5(data).hexdigest(), hashlib.sha256(data).hexdigest()


# ------------------------------------------------------------------------------- archives


@pytest.mark.parametrize("fmt", [".conda", ".tar.bz2"])
def test_archive_opens_with_conda_package_handling(tmp_path: Path, fmt: cf.ArchiveFormat) -> None:
    spec = PackageSpec("numpy", "1.26.4", depends=["python >=3.11"], python_site_packages=True)
    archive = cf.build_package(spec, tmp_path / "out", fmt)
    assert archive == tmp_path / "out" / "linux-64" / f"numpy-1.26.4-{spec.build_string}{fmt}"
    assert spec.build_string.startswith("h") and spec.build_string.endswith("_0")

    cph_api.extract(str(archive), str(tmp_path / "x"))
    index = json.loads((tmp_path / "x" / "info" / "index.json").read_text())
    assert index["name"] == "numpy" and index["version"] == "1.26.4"
    assert index["build"] == spec.build_string and index["depends"] == ["python >=3.11"]
    assert (index["subdir"], index["platform"], index["arch"]) == ("linux-64", "linux", "x86_64")

    paths = json.loads((tmp_path / "x" / "info" / "paths.json").read_text())
    assert paths["paths_version"] == 1
    listed = {p["_path"] for p in paths["paths"]}
    info_files = (tmp_path / "x" / "info" / "files").read_text().split()
    assert listed == set(info_files)
    assert f"{cf.SITE_PACKAGES}/numpy-1.26.4.dist-info/RECORD" in listed
    for entry in paths["paths"]:
        data = (tmp_path / "x" / entry["_path"]).read_bytes()
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
        assert entry["size_in_bytes"] == len(data)


def test_noarch_python_ships_site_packages_and_link_json(tmp_path: Path) -> None:
    spec = PackageSpec(
        "requests", "2.32.3", subdir="noarch", noarch="python", python_site_packages=True
    )
    cph_api.extract(str(cf.build_package(spec, tmp_path)), str(tmp_path / "x"))
    index = json.loads((tmp_path / "x" / "info" / "index.json").read_text())
    assert index["noarch"] == "python" and "arch" not in index
    link = json.loads((tmp_path / "x" / "info" / "link.json").read_text())
    assert link["noarch"]["type"] == "python"
    assert (tmp_path / "x" / "site-packages" / "requests" / "__init__.py").is_file()


def test_rebuilding_is_byte_identical(tmp_path: Path) -> None:
    spec = cf.standard_specs()[0]
    first = cf.build_package(spec, tmp_path / "a")
    second = cf.build_package(spec, tmp_path / "b")
    assert first.read_bytes() == second.read_bytes()


def test_spec_rejects_inconsistent_noarch() -> None:
    with pytest.raises(ValueError, match="subdir 'noarch'"):
        PackageSpec("tzdata", "2024a", noarch="generic")
    with pytest.raises(ValueError, match="noarch="):
        PackageSpec("tzdata", "2024a", subdir="noarch")


# ------------------------------------------------------------------------------- channels


def test_repodata_lists_every_package(conda_channel: Channel) -> None:
    assert conda_channel.url.startswith("file:///") and conda_channel.name == "local"
    listed: set[str] = set()
    for subdir in ("linux-64", "noarch"):
        repodata = json.loads((conda_channel.path / subdir / "repodata.json").read_text())
        assert repodata["info"]["subdir"] == subdir
        for fn, entry in {**repodata["packages"], **repodata["packages.conda"]}.items():
            md5, sha256 = _digests(conda_channel.path / subdir / fn)
            assert (entry["md5"], entry["sha256"]) == (md5, sha256)
            listed.add(fn)
    built = {f"{s.dist_name}{s.fmt or '.conda'}" for s in conda_channel.specs}
    assert listed == built
    assert len(built) == len(cf.standard_specs())


def test_other_channel_holds_identical_archives(
    conda_channel: Channel, other_channel: Channel
) -> None:
    assert other_channel.url != conda_channel.url
    for archive in conda_channel.path.glob("*/*.conda"):
        twin = other_channel.path / archive.relative_to(conda_channel.path)
        assert twin.read_bytes() == archive.read_bytes()


# ------------------------------------------------------------------------------- prefixes


def test_clean_prefix_records_match_channel_archives(
    make_prefix: PrefixFactory, conda_channel: Channel
) -> None:
    prefix = make_prefix()
    assert (prefix / "conda-meta" / "history").is_file()
    records = _records(prefix)
    assert set(records) == {
        "python", "numpy", "pandas", "requests", "tzdata", "openssl", "libzlib", "ca-certificates"
    }  # fmt: skip
    for record in records.values():
        url = str(record["url"])
        assert url.startswith(conda_channel.url + "/")
        archive = conda_channel.path / url[len(conda_channel.url) + 1 :]
        assert (record["md5"], record["sha256"]) == _digests(archive)
        assert record["channel"] == conda_channel.url + "/"
        for entry in record["paths_data"]["paths"]:
            data = (prefix / entry["_path"]).read_bytes()
            assert hashlib.sha256(data).hexdigest() == entry["sha256"]
    assert records["numpy"]["requested_specs"] == ["numpy ==1.26.4 py311h64a7726_0"]


def test_clean_prefix_resembles_the_sample_prefix(make_prefix: PrefixFactory) -> None:
    ours = {(r["name"], r["version"], r["build"]) for r in _records(make_prefix()).values()}
    sample = {(r["name"], r["version"], r["build"]) for r in _records(SAMPLE_PREFIX).values()}
    assert ours == sample


def test_noarch_python_is_linked_into_pythons_site_packages(make_prefix: PrefixFactory) -> None:
    prefix = make_prefix()
    record = _records(prefix)["requests"]
    assert f"{cf.SITE_PACKAGES}/requests/__init__.py" in record["files"]
    installer = prefix / cf.SITE_PACKAGES / "requests-2.32.3.dist-info" / "INSTALLER"
    assert installer.read_text() == "conda\n"


def test_prefix_from_other_channel_records_that_channel(
    make_prefix: PrefixFactory, other_channel: Channel
) -> None:
    records = _records(make_prefix(channel=other_channel))
    assert {r["channel"] for r in records.values()} == {other_channel.url + "/"}
    assert str(records["numpy"]["url"]).startswith(other_channel.url + "/linux-64/")


def test_unpinned_solve_picks_newest_and_highest_build(make_prefix: PrefixFactory) -> None:
    records = _records(make_prefix(["numpy", "openssl"]))
    assert records["numpy"]["version"] == "1.26.5"
    assert records["openssl"]["version"] == "3.3.2"
    pinned = _records(make_prefix(["numpy ==1.26.4"], name="pinned"))
    assert pinned["numpy"]["build"] == "py311h0000000_1"


def test_install_works_inside_a_running_event_loop(tmp_path: Path, conda_channel: Channel) -> None:
    async def inside() -> None:
        cf.install_prefix(conda_channel, ["tzdata"], tmp_path / "env")

    asyncio.run(inside())
    assert set(_records(tmp_path / "env")) == {"tzdata"}


def test_installed_files_do_not_share_inodes_between_prefixes(make_prefix: PrefixFactory) -> None:
    first, second = make_prefix(name="a"), make_prefix(name="b")
    lib = Path("lib") / "libz.so.1.3.1"
    (first / lib).write_bytes(b"tampered")
    assert (second / lib).read_bytes() == b"ELF stand-in for libz\n"


# ------------------------------------------------------------------------------- drift


def test_replace_packages_changes_only_the_named_package(
    make_prefix: PrefixFactory, other_channel: Channel, conda_channel: Channel
) -> None:
    prefix = make_prefix()
    before = _records(prefix)
    cf.replace_packages(conda_channel, ["numpy ==1.26.5"], prefix)
    cf.replace_packages(other_channel, ["openssl ==3.3.1"], prefix)
    after = _records(prefix)
    assert after["numpy"]["version"] == "1.26.5"
    assert (prefix / cf.SITE_PACKAGES / "numpy-1.26.5.dist-info").is_dir()
    assert not (prefix / cf.SITE_PACKAGES / "numpy-1.26.4.dist-info").exists()
    assert after["openssl"]["channel"] == other_channel.url + "/"
    assert after["openssl"]["sha256"] == before["openssl"]["sha256"]
    for name in ("python", "pandas", "requests", "tzdata", "libzlib", "ca-certificates"):
        assert after[name] == before[name]


def test_remove_package_unlinks_files_and_record(make_prefix: PrefixFactory) -> None:
    prefix = make_prefix()
    cf.remove_package(prefix, "tzdata")
    assert "tzdata" not in _records(prefix)
    assert not (prefix / "share" / "zoneinfo" / "UTC").exists()
    assert "pandas" in _records(prefix)  # its dependent stays, like `conda remove --force`
    with pytest.raises(ValueError, match="not installed"):
        cf.remove_package(prefix, "tzdata")


def test_extra_package_by_installing_more(make_prefix: PrefixFactory) -> None:
    records = _records(make_prefix([*CLEAN_SPECS, "zstd"]))
    assert records["zstd"]["version"] == "1.5.6"


def test_pip_package_writes_a_pip_dist_info(make_prefix: PrefixFactory) -> None:
    prefix = make_prefix()
    dist = cf.add_pip_package(prefix, "foo-bar", "1.0", requires=["requests>=2"])
    sp = prefix / cf.SITE_PACKAGES
    assert dist == sp / "foo_bar-1.0.dist-info"
    assert (dist / "INSTALLER").read_text() == "pip\n"
    assert "Requires-Dist: requests>=2" in (dist / "METADATA").read_text()
    assert (dist / "WHEEL").is_file() and (sp / "foo_bar" / "__init__.py").is_file()
    rows = list(csv.reader(io.StringIO((dist / "RECORD").read_text())))
    assert ["foo_bar-1.0.dist-info/RECORD", "", ""] in rows
    for path, digest, size in rows:
        if not digest:
            continue
        data = (sp / path).read_bytes()
        expected = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
        assert digest == f"sha256={expected.decode()}" and int(size) == len(data)
    assert "foo-bar" not in _records(prefix)


def test_minimal_pip_package_has_no_record(make_prefix: PrefixFactory) -> None:
    dist = cf.add_pip_package(make_prefix(), "bar_minimal", "0.5", minimal=True)
    assert sorted(p.name for p in dist.iterdir()) == ["INSTALLER", "METADATA"]


def test_pip_shadowing_removes_conda_dist_info_but_keeps_record(
    make_prefix: PrefixFactory,
) -> None:
    prefix = make_prefix()
    sp = prefix / cf.SITE_PACKAGES
    cf.add_pip_package(prefix, "requests", "2.32.4", shadow=True)
    assert not (sp / "requests-2.32.3.dist-info").exists()
    assert (sp / "requests-2.32.4.dist-info" / "INSTALLER").read_text() == "pip\n"
    assert "2.32.4" in (sp / "requests" / "__init__.py").read_text()
    assert _records(prefix)["requests"]["version"] == "2.32.3"


def test_shadowing_needs_a_conda_dist_info(make_prefix: PrefixFactory) -> None:
    with pytest.raises(ValueError, match="no dist-info for tzdata"):
        cf.add_pip_package(make_prefix(), "tzdata", "2024.1", shadow=True)


def test_pip_needs_a_conda_python(make_prefix: PrefixFactory) -> None:
    with pytest.raises(ValueError, match="no conda python"):
        cf.add_pip_package(make_prefix(["tzdata"]), "foo", "1.0")


def test_corrupt_record_is_invalid_json(make_prefix: PrefixFactory) -> None:
    path = cf.corrupt_record(make_prefix(), "numpy")
    assert path.name == "numpy-1.26.4-py311h64a7726_0.json"
    with pytest.raises(json.JSONDecodeError):
        json.loads(path.read_text())


def test_remove_history(make_prefix: PrefixFactory) -> None:
    prefix = make_prefix()
    cf.remove_history(prefix)
    assert not (prefix / "conda-meta" / "history").exists()


def test_appledouble_and_misnamed_records(make_prefix: PrefixFactory) -> None:
    prefix = make_prefix()
    ghost = cf.add_appledouble(prefix, "numpy")
    assert ghost.name == "._numpy-1.26.4-py311h64a7726_0.json"
    with pytest.raises(ValueError):  # not JSON, not even UTF-8
        json.loads(ghost.read_bytes())
    copy = cf.add_misnamed_record(prefix, "numpy")
    assert copy.name == "numpy.json"
    assert json.loads(copy.read_text())["name"] == "numpy"


# ------------------------------------------------------------------------------- benchmarks


def test_synthetic_prefix_records_parse_as_prefix_records(tmp_path: Path) -> None:
    records = cf.synthetic_prefix(tmp_path / "env", 50)
    assert len(records) == 50 and records[0]["name"] == "python"
    assert (tmp_path / "env" / "conda-meta" / "history").is_file()
    files = sorted((tmp_path / "env" / "conda-meta").glob("*.json"))
    assert len(files) == 50
    sample = json.loads(next(SAMPLE_PREFIX.glob("conda-meta/numpy-*.json")).read_text())
    for path in files:
        parsed = rattler.PrefixRecord.from_path(path)
        assert path.stem == f"{parsed.name.normalized}-{parsed.version}-{parsed.build}"
        assert set(json.loads(path.read_text())) == set(sample)


# ------------------------------------------------------------------------------- examples


def test_examples_lock_lists_exactly_the_clean_env() -> None:
    lock = yaml.safe_load((EXAMPLES / "conda-lock.yml").read_text())
    assert lock["version"] == 1 and lock["metadata"]["platforms"] == ["linux-64"]
    locked = {p["name"]: p for p in lock["package"]}
    records = _records(EXAMPLES / "envs" / "prod-clean")
    assert set(locked) == set(records)
    for name, record in records.items():
        entry = locked[name]
        assert entry["url"] == record["url"] and entry["version"] == record["version"]
        assert entry["hash"] == {"md5": record["md5"], "sha256": record["sha256"]}
    rattler.LockFile.from_path(EXAMPLES / "conda-lock.yml")


def test_examples_drifted_env_drifts() -> None:
    clean = _records(EXAMPLES / "envs" / "prod-clean")
    drifted = EXAMPLES / "envs" / "prod-drifted"
    records = _records(drifted)
    assert records["numpy"]["version"] != clean["numpy"]["version"]
    assert set(records) - set(clean)
    sp = drifted / cf.SITE_PACKAGES
    assert (sp / "requests-2.32.4.dist-info" / "INSTALLER").read_text() == "pip\n"
    for env in ("prod-clean", "prod-drifted"):
        assert (EXAMPLES / "envs" / env / "conda-meta" / "history").is_file()


def test_virtual_packages_are_offered_to_the_solver(tmp_path: Path) -> None:
    spec = PackageSpec("glibc-user", "1.0", depends=["__glibc >=2.17"])
    channel = cf.build_channel([spec], tmp_path / "vchan")
    with pytest.raises(SolverError, match="__glibc"):
        cf.install_prefix(channel, ["glibc-user"], tmp_path / "none")
    cf.install_prefix(channel, ["glibc-user"], tmp_path / "env", virtual_packages=["__glibc=2.28"])
    assert set(_records(tmp_path / "env")) == {"glibc-user"}

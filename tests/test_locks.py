"""Lock loaders against the real sample files, and against broken files written on purpose."""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from producer.locks import conda_lock, detect, records, signatures
from producer.locks.conda_lock import CondaLockLoader
from producer.locks.detect import FORMATS, load_lock
from producer.locks.interface import LockError
from worker.models import Lock, LockedPackage, LockKind

DATA = Path(__file__).parent / "data"
GOOD = DATA / "locks-for-prefix-good-pip"
PUBLIC = DATA / "public"
CONDA_FORGE = "https://conda.anaconda.org/conda-forge"

SAMPLES = {
    GOOD / "conda-lock.yml": "conda-lock",
    GOOD / "environment.yml": "environment-yml",
    GOOD / "pixi.lock": "pixi",
    DATA / "prefix-good-pip.conda-list.json": "golden",
    DATA / "prefix-good-pip.explicit-md5.txt": "explicit",
    DATA / "prefix-good-pip.export.txt": "golden",
    PUBLIC / "conda-lock-gdal/environment.yml": "environment-yml",
    PUBLIC / "conda-lock-install-with-pip-deps/conda-lock.yml": "conda-lock",
    PUBLIC / "conda-lock-pip-with-platform-selector/environment.yml": "environment-yml",
    PUBLIC / "conda-lock-zlib/conda-linux-64.lock": "explicit",
    PUBLIC / "pixi-v6-wheel-with-correct-tags/pixi.lock": "pixi",
    PUBLIC / "pixi-v7-old-lock-file/pixi.lock": "pixi",
}

# What the prefix `prefix-good-pip` holds (conda packages), as every full lock of it must say.
PREFIX_CONDA = {
    "ca-certificates": ("2024.7.4", "hbcca054_0", "linux-64"),
    "libzlib": ("1.3.1", "h4ab18f5_1", "linux-64"),
    "numpy": ("1.26.4", "py311h64a7726_0", "linux-64"),
    "openssl": ("3.3.1", "h4ab18f5_0", "linux-64"),
    "pandas": ("2.2.2", "py311h14de704_1", "linux-64"),
    "python": ("3.11.7", "h1234_0_cpython", "linux-64"),
    "requests": ("2.32.3", "pyhd8ed1ab_0", "noarch"),
    "tzdata": ("2024a", "h0c530f3_0", "noarch"),
}
NUMPY_MD5 = "6d12cdea26ad3e45abd2239c3697c003"
NUMPY_SHA256 = "a0541940b0e7d508963d19863e91f939dc9993e1e5a3b67df7facac0419f8d17"


def by_name(lock: Lock, manager: str = "conda") -> dict[str, LockedPackage]:
    return {p.name: p for p in lock.packages if p.manager == manager}


def line_of(path: Path, needle: str) -> int:
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in {path}")


def line_starting(path: Path, prefix: str) -> int:
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if line.startswith(prefix):
            return number
    raise AssertionError(f"no line starts with {prefix!r} in {path}")


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


def lock_error(path: Path, **kwargs: str) -> LockError:
    with pytest.raises(LockError) as info:
        load_lock(path, **kwargs)
    assert str(info.value).startswith(str(path))
    return info.value


# --- every sample loads, with the right format ------------------------------------------------


@pytest.mark.parametrize("path", sorted(SAMPLES), ids=lambda p: str(p.relative_to(DATA)))
def test_every_sample_loads_and_is_detected(path: Path) -> None:
    lock = load_lock(path, platform="linux-64")
    assert lock.format == SAMPLES[path]
    assert lock.source == str(path)
    assert lock.platform == "linux-64"
    assert lock.packages
    assert all(p.line is not None and p.line >= 1 for p in lock.packages)
    expected_kind = LockKind.SPEC if SAMPLES[path] == "environment-yml" else LockKind.FULL
    assert lock.kind is expected_kind


@pytest.mark.parametrize("path", sorted(SAMPLES), ids=lambda p: str(p.relative_to(DATA)))
def test_forcing_the_detected_format_gives_the_same_lock(path: Path) -> None:
    assert load_lock(path, fmt=SAMPLES[path], platform="linux-64") == load_lock(
        path, platform="linux-64"
    )


def test_formats_lists_every_loader() -> None:
    assert set(FORMATS) == {"conda-lock", "explicit", "environment-yml", "pixi", "golden"}


def test_forcing_a_wrong_format_is_a_lock_error(tmp_path: Path) -> None:
    error = lock_error(GOOD / "pixi.lock", fmt="explicit", platform="linux-64")
    assert error.line == 1
    assert "this is a pixi file, not explicit" in error.message
    unknown = write(tmp_path, "x.lock", "name: x\n")
    assert "@EXPLICIT" in lock_error(unknown, fmt="explicit", platform="linux-64").message


def test_unknown_format_name_is_a_lock_error() -> None:
    error = lock_error(GOOD / "pixi.lock", fmt="poetry")
    assert "conda-lock" in error.message


def test_default_platform_is_this_host() -> None:
    import rattler

    if str(rattler.Subdir.current()) != "linux-64":
        pytest.skip("the sample prefix is linux-64")
    assert load_lock(GOOD / "conda-lock.yml").platform == "linux-64"


# --- full locks of the sample prefix agree with the prefix ------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        GOOD / "conda-lock.yml",
        GOOD / "pixi.lock",
        DATA / "prefix-good-pip.explicit-md5.txt",
        DATA / "prefix-good-pip.conda-list.json",
        DATA / "prefix-good-pip.export.txt",
    ],
    ids=lambda p: p.name,
)
def test_full_locks_of_the_prefix(path: Path) -> None:
    lock = load_lock(path, platform="linux-64")
    conda = by_name(lock)
    assert set(conda) == set(PREFIX_CONDA)
    for name, (version, build, subdir) in PREFIX_CONDA.items():
        assert conda[name].version == version
        assert conda[name].build == build
        if conda[name].subdir is not None:  # conda list --export does not say
            assert conda[name].subdir == subdir
        if conda[name].channel is not None:
            assert conda[name].channel == CONDA_FORGE


def test_conda_lock_values() -> None:
    path = GOOD / "conda-lock.yml"
    lock = load_lock(path, platform="linux-64")
    numpy = by_name(lock)["numpy"]
    assert numpy.version == "1.26.4"
    assert numpy.build == "py311h64a7726_0"
    assert numpy.channel == CONDA_FORGE
    assert numpy.subdir == "linux-64"
    assert numpy.md5 == NUMPY_MD5
    assert numpy.sha256 == NUMPY_SHA256
    assert numpy.url == f"{CONDA_FORGE}/linux-64/numpy-1.26.4-py311h64a7726_0.conda"
    assert numpy.line == line_of(path, "- name: numpy")
    assert by_name(lock)["pandas"].build == "py311h14de704_1"  # from a .tar.bz2 name
    assert lock.channels == [CONDA_FORGE]
    assert lock.environment is None


def test_conda_lock_with_pip_entries_per_platform() -> None:
    path = PUBLIC / "conda-lock-install-with-pip-deps/conda-lock.yml"
    linux = load_lock(path, platform="linux-64")
    arm = load_lock(path, platform="linux-aarch64")
    assert {p.subdir for p in linux.packages if p.manager == "conda"} <= {"linux-64", "noarch"}
    assert {p.subdir for p in arm.packages if p.manager == "conda"} <= {"linux-aarch64", "noarch"}
    assert "ld_impl_linux-64" in by_name(linux) and "ld_impl_linux-64" not in by_name(arm)
    assert "ld_impl_linux-aarch64" in by_name(arm)
    assert by_name(linux)["_libgcc_mutex"].version == "0.1"  # quoted '0.1' stays text
    pip = by_name(arm, "pypi")
    assert set(pip) == {"certifi", "charset-normalizer", "requests", "urllib3"}
    charset = pip["charset-normalizer"]
    assert charset.version == "3.3.2"
    assert charset.sha256 == "8f4a014bc36d3c57402e2977dada34f9c12300af536839dc38c0beab8878f38a"
    assert charset.build is None and charset.channel is None
    assert charset.line == 655
    assert by_name(linux, "pypi")["charset-normalizer"].line == 645


def test_conda_lock_noarch_keeps_noarch_subdir() -> None:
    lock = load_lock(GOOD / "conda-lock.yml", platform="linux-64")
    assert by_name(lock)["tzdata"].subdir == "noarch"
    assert by_name(lock)["requests"].subdir == "noarch"


def test_conda_lock_dedupes_categories(tmp_path: Path) -> None:
    text = (GOOD / "conda-lock.yml").read_text()
    numpy_block = text[text.index("- name: numpy") : text.index("- name: openssl")]
    path = write(tmp_path, "conda-lock.yml", text + numpy_block.replace("main", "dev"))
    lock = load_lock(path, platform="linux-64")
    assert [p.name for p in lock.packages].count("numpy") == 1
    assert by_name(lock)["numpy"].line == line_of(path, "- name: numpy")


def test_conda_lock_versions_stay_text(tmp_path: Path) -> None:
    text = (GOOD / "conda-lock.yml").read_text().replace("version: 1.26.4", "version: 3.10")
    path = write(tmp_path, "conda-lock.yml", text)
    assert by_name(load_lock(path, platform="linux-64"))["numpy"].version == "3.10"


def test_conda_lock_composer_path_matches_fast_path(tmp_path: Path) -> None:
    """A tag the line scanner does not read sends the file through the YAML composer."""
    for source in (
        GOOD / "conda-lock.yml",
        PUBLIC / "conda-lock-install-with-pip-deps/conda-lock.yml",
    ):
        text = source.read_text()
        slow_text = text.replace("optional: false", "optional: !!bool false").replace(
            "version: 1.26.4", "version: 1.26.4  # a comment"
        )
        path = write(tmp_path, "conda-lock.yml", slow_text)
        fast = load_lock(source, platform="linux-64")
        slow = load_lock(path, platform="linux-64")
        assert slow.packages == fast.packages
        assert slow.channels == fast.channels


def test_conda_lock_flow_style_entry_is_read_by_the_composer(tmp_path: Path) -> None:
    text = (
        "version: 1\nmetadata:\n  platforms: [linux-64]\n  channels: [{url: conda-forge}]\n"
        "package:\n"
        "- {name: zlib, version: 1.3.10, manager: conda, platform: linux-64, hash: {md5: "
        + "a" * 32
        + "}, url: 'https://conda.anaconda.org/conda-forge/linux-64/zlib-1.3.10-h0_1.conda'}\n"
    )
    lock = load_lock(write(tmp_path, "conda-lock.yml", text), platform="linux-64")
    (zlib,) = lock.packages
    assert (zlib.version, zlib.build, zlib.md5, zlib.line) == ("1.3.10", "h0_1", "a" * 32, 6)


def test_conda_lock_5000_entries_load_through_the_line_scanner(tmp_path: Path) -> None:
    entry = (
        "- name: pkg{i}\n  version: 1.{i}\n  manager: conda\n  platform: linux-64\n"
        "  dependencies:\n    libzlib: '>=1.3.1,<2.0a0'\n    python: '>=3.11,<3.12.0a0'\n"
        "  url: https://conda.anaconda.org/conda-forge/linux-64/pkg{i}-1.{i}-py311h6_0.conda\n"
        f"  hash:\n    md5: {NUMPY_MD5}\n    sha256: {NUMPY_SHA256}\n"
        "  category: main\n  optional: false\n"
    )
    text = "version: 1\nmetadata:\n  platforms:\n  - linux-64\npackage:\n"
    text += "".join(entry.format(i=i) for i in range(5000))
    path = write(tmp_path, "conda-lock.yml", text)
    lock = load_lock(path, platform="linux-64")
    assert len(lock.packages) == 5000
    assert lock.packages[4999].version == "1.4999"
    assert lock.packages[4999].line == 5 + 4999 * 13 + 1


def test_explicit_5000_lines(tmp_path: Path) -> None:
    lines = ["# platform: linux-64", "@EXPLICIT"]
    lines += [f"{CONDA_FORGE}/linux-64/pkg{i}-1.{i}-h0_0.conda#{NUMPY_MD5}" for i in range(5000)]
    path = write(tmp_path, "big.txt", "\n".join(lines))
    lock = load_lock(path, platform="linux-64")
    assert len(lock.packages) == 5000
    assert lock.packages[-1].line == 5002


# --- explicit ----------------------------------------------------------------------------------


def test_explicit_values() -> None:
    path = DATA / "prefix-good-pip.explicit-md5.txt"
    lock = load_lock(path, platform="linux-64")
    numpy = by_name(lock)["numpy"]
    assert (numpy.md5, numpy.sha256, numpy.subdir) == (NUMPY_MD5, None, "linux-64")
    assert numpy.line == line_of(path, "numpy-1.26.4")
    assert [p.name for p in lock.packages][:3] == ["ca-certificates", "libzlib", "tzdata"]


def test_explicit_from_conda_lock_header() -> None:
    path = PUBLIC / "conda-lock-zlib/conda-linux-64.lock"
    lock = load_lock(path, platform="linux-64")
    assert lock.format == "explicit"
    zlib = by_name(lock)["zlib"]
    assert (zlib.version, zlib.build, zlib.md5) == (
        "1.2.11",
        "h36c2ea0_1013",
        "cf7190238072a41e9579e4476a6a60b8",
    )
    error = lock_error(path, platform="osx-arm64")
    assert "linux-64" in error.message


@pytest.mark.parametrize(
    ("fragment", "md5", "sha256"),
    [
        ("", None, None),
        ("#" + "A" * 32, "a" * 32, None),
        ("#" + "b" * 64, None, "b" * 64),
        ("#sha256:" + "c" * 64, None, "c" * 64),
    ],
)
def test_explicit_hash_forms(tmp_path: Path, fragment: str, md5: str, sha256: str) -> None:
    url = f"{CONDA_FORGE}/noarch/tzdata-2024a-h0c530f3_0.conda"
    path = write(tmp_path, "x.txt", f"@EXPLICIT\n\n# comment\n{url}{fragment}\n")
    (package,) = load_lock(path, platform="win-64").packages
    assert (package.md5, package.sha256, package.line) == (md5, sha256, 4)
    assert package.subdir == "noarch"


# --- environment.yml ----------------------------------------------------------------------------


def test_environment_yml_specs() -> None:
    path = GOOD / "environment.yml"
    lock = load_lock(path, platform="linux-64")
    specs = {p.name: p.spec for p in lock.packages if p.manager == "conda"}
    assert specs == {
        "python": "python=3.11",
        "numpy": "numpy=1.26",
        "pandas": "pandas>=2.2,<3",
        "openssl": "openssl 3.3.1 h4ab18f5_0",
        "requests": "requests",
        "tzdata": "tzdata",
    }
    foo = by_name(lock, "pypi")["foo"]
    assert (foo.spec, foo.version, foo.line) == ("foo==1.0", None, line_of(path, "foo==1.0"))
    assert lock.channels == [CONDA_FORGE]
    assert all(p.version is None and p.build is None for p in lock.packages)


def test_environment_yml_badly_formatted_sample() -> None:
    path = PUBLIC / "conda-lock-gdal/environment.yml"
    lock = load_lock(path, platform="osx-arm64")
    assert by_name(lock)["python"].spec == "python >= 3.8, < 3.9"
    assert by_name(lock, "pypi")["toolz"].line == line_of(path, "- toolz")
    assert lock.channels == [CONDA_FORGE, "https://repo.anaconda.com/pkgs/main"]


def test_environment_yml_selectors_and_platforms() -> None:
    path = PUBLIC / "conda-lock-pip-with-platform-selector/environment.yml"
    assert "psutil" in by_name(load_lock(path, platform="linux-64"), "pypi")
    assert "psutil" not in by_name(load_lock(path, platform="osx-arm64"), "pypi")
    error = lock_error(path, platform="win-64")
    assert "linux-64, osx-arm64" in error.message


def test_environment_yml_pip_options_are_noted_not_fatal(tmp_path: Path) -> None:
    text = (
        "channels: [conda-forge]\ndependencies:\n  - python 3.10.*\n  - pip:\n"
        "    - -e ./src\n    - -r requirements.txt\n    - --index-url https://example.org/simple\n"
        "    - --extra-index-url https://example.org/x\n    - -f ./wheels\n"
        "    - https://example.org/pkg-1.0.whl\n    - git+https://example.org/x.git\n"
        "    - Jinja2>=3\n    - zope.interface==6.0\n    - Charset_Normalizer\n"
        "    - 'not a valid requirement!!'\n"
    )
    lock = load_lock(write(tmp_path, "environment.yml", text), platform="linux-64")
    assert by_name(lock)["python"].spec == "python 3.10.*"
    assert set(by_name(lock, "pypi")) == {"jinja2", "zope-interface", "charset-normalizer"}
    assert len(lock.notes) == 8
    assert any(":5: " in note and "-e ./src" in note for note in lock.notes)


def test_environment_yml_versions_stay_text(tmp_path: Path) -> None:
    text = "dependencies:\n  - python=3.10\n  - pip:\n    - foo==3.10\n"
    lock = load_lock(write(tmp_path, "environment.yml", text), platform="linux-64")
    assert [p.spec for p in lock.packages] == ["python=3.10", "foo==3.10"]


# --- pixi ----------------------------------------------------------------------------------------


def test_pixi_v7_sample_of_the_prefix() -> None:
    path = GOOD / "pixi.lock"
    lock = load_lock(path, platform="linux-64")
    assert lock.environment == "default"
    numpy = by_name(lock)["numpy"]
    assert (numpy.md5, numpy.sha256, numpy.channel) == (NUMPY_MD5, NUMPY_SHA256, CONDA_FORGE)
    assert numpy.line == line_starting(path, f"- conda: {CONDA_FORGE}/linux-64/numpy-")


def test_pixi_v7_platforms() -> None:
    path = PUBLIC / "pixi-v7-old-lock-file/pixi.lock"
    win = load_lock(path, platform="win-64", environment="default")
    mac = load_lock(path, platform="osx-arm64")
    assert "colorama" in by_name(win, "pypi") and "colorama" not in by_name(mac, "pypi")
    assert by_name(mac)["python"].subdir == "osx-arm64"
    assert by_name(mac)["python"].version == "3.12.2"
    assert by_name(mac)["tzdata"].subdir == "noarch"
    markupsafe = by_name(mac, "pypi")["markupsafe"]
    assert markupsafe.version == "2.1.5"
    assert "macosx" in (markupsafe.url or "")
    assert markupsafe.line == line_starting(path, f"- pypi: {markupsafe.url}")
    error = lock_error(path, platform="linux-aarch64")
    assert "linux-64, osx-64, osx-arm64, win-64" in error.message


def test_pixi_v6_with_wheels() -> None:
    path = PUBLIC / "pixi-v6-wheel-with-correct-tags/pixi.lock"
    lock = load_lock(path, platform="linux-64")
    assert len(by_name(lock)) == 24
    assert set(by_name(lock, "pypi")) == {"cffi", "cryptography", "pycparser"}
    assert by_name(lock, "pypi")["pycparser"].version == "2.23"
    assert by_name(lock)["_openmp_mutex"].build == "2_gnu"


def test_pixi_missing_environment() -> None:
    error = lock_error(GOOD / "pixi.lock", platform="linux-64", environment="prod")
    assert "'prod'" in error.message and "default" in error.message


# --- golden ----------------------------------------------------------------------------------


def test_golden_conda_list_json() -> None:
    lock = load_lock(DATA / "prefix-good-pip.conda-list.json", platform="linux-64")
    foo = by_name(lock, "pypi")["foo"]
    assert (foo.version, foo.channel) == ("1.0", None)
    assert by_name(lock)["numpy"].channel == CONDA_FORGE
    assert "foo" not in by_name(lock)


def test_golden_export_text() -> None:
    path = DATA / "prefix-good-pip.export.txt"
    lock = load_lock(path, platform="linux-64")
    assert by_name(lock, "pypi")["foo"].version == "1.0"
    assert by_name(lock)["numpy"].line == line_of(path, "numpy=")
    assert "linux-64" in lock_error(path, platform="osx-64").message


def test_golden_env_export(tmp_path: Path) -> None:
    text = (
        "name: prod\nchannels:\n  - conda-forge\ndependencies:\n"
        "  - numpy=1.26.4=py311h64a7726_0\n  - python=3.10=h1_0_cpython\n  - pip:\n"
        "    - foo==1.0\n    - Bar_Baz==2.0\nprefix: /opt/conda/envs/prod\n"
    )
    lock = load_lock(write(tmp_path, "environment.yml", text), platform="linux-64")
    assert lock.format == "golden" and lock.kind is LockKind.FULL
    assert by_name(lock)["python"].version == "3.10"
    assert by_name(lock)["numpy"].line == 5
    assert {n: p.version for n, p in by_name(lock, "pypi").items()} == {
        "foo": "1.0",
        "bar-baz": "2.0",
    }


# --- broken input: every error names the file and the line -----------------------------------


@pytest.mark.parametrize(
    ("name", "content", "fmt", "line", "words"),
    [
        ("conda-lock.yml", "version: 1\npackage:\n- name: x\n  url: [unclosed\n", None, 5, "YAML"),
        ("environment.yml", "dependencies:\n  - a\n - b: [\n", None, 3, "YAML"),
        ("pixi.lock", "version: 6\nenvironments:\n  default: {\n", None, 4, "YAML"),
        ("x.txt", "@EXPLICIT\nhttps://x.org/c/linux-64/a-1-0.conda\nnot a url\n", None, 3, "URL"),
        ("x.txt", "@EXPLICIT\nhttps://x.org/c/linux-64/a-1-0.conda#zz\n", None, 2, "hash"),
        ("x.txt", "https://x.org/c/linux-64/a-1-0.conda\n@EXPLICIT\n", "explicit", 1, "before"),
        ("x.txt", "@EXPLICIT\nhttps://x.org/c/linux-64/nonsense.whl\n", None, 2, "name"),
        ("export.txt", "# platform: linux-64\na=1=b\nb=2\n", "golden", 3, "name=version"),
        ("export.txt", "# platform: linux-64\na=1=b\nb 2\nc=3=d\n", None, 3, "name=version"),
        ("list.json", '[\n  {"name": "a",\n   "version": 1,\n}]', None, 4, "JSON"),
        ("list.json", '[\n  {\n    "name": "a"\n  }\n]\n', None, 3, "'version'"),
        ("environment.yml", "dependencies:\n  - python=3.11\n  - ===\n", None, 3, "MatchSpec"),
        ("environment.yml", "dependencies:\n  -\n", None, 2, "empty"),
    ],
)
def test_malformed_input_names_file_and_line(
    tmp_path: Path, name: str, content: str, fmt: str | None, line: int, words: str
) -> None:
    path = write(tmp_path, name, content)
    kwargs = {"platform": "linux-64"} | ({"fmt": fmt} if fmt else {})
    error = lock_error(path, **kwargs)
    assert error.line == line, str(error)
    assert str(error).startswith(f"{path}:{line}: ")
    assert words in error.message


def test_conda_lock_entry_without_url(tmp_path: Path) -> None:
    text = (GOOD / "conda-lock.yml").read_text()
    start = text.index("- name: numpy")
    url_line = text.index("  url:", start)
    broken = text[:url_line] + text[text.index("\n", url_line) + 1 :]
    path = write(tmp_path, "conda-lock.yml", broken)
    error = lock_error(path, platform="linux-64")
    assert error.line == line_of(path, "- name: numpy")
    assert str(error) == f"{path}:{error.line}: package entry has no 'url'"


def test_conda_lock_bad_hash_and_url(tmp_path: Path) -> None:
    text = (GOOD / "conda-lock.yml").read_text()
    path = write(tmp_path, "conda-lock.yml", text.replace(NUMPY_MD5, "nothex"))
    assert lock_error(path, platform="linux-64").line == line_of(path, "md5: nothex")
    bad_url = text.replace("numpy-1.26.4-py311h64a7726_0.conda", "numpy.whl")
    path = write(tmp_path, "conda-lock.yml", bad_url)
    assert lock_error(path, platform="linux-64").line == line_of(path, "numpy.whl")


def test_conda_lock_wrong_version(tmp_path: Path) -> None:
    text = (GOOD / "conda-lock.yml").read_text().replace("version: 1\n", "version: 2\n", 1)
    path = write(tmp_path, "conda-lock.yml", text)
    error = lock_error(path, platform="linux-64")
    assert error.line == line_of(path, "version: 2") and "version" in error.message


def test_conda_lock_missing_platform_lists_what_it_has() -> None:
    error = lock_error(
        PUBLIC / "conda-lock-install-with-pip-deps/conda-lock.yml", platform="osx-arm64"
    )
    assert error.line is None
    assert "osx-arm64" in error.message and "linux-64, linux-aarch64" in error.message


def test_non_utf8_bytes(tmp_path: Path) -> None:
    path = write(tmp_path, "conda-lock.yml", b"version: 1\npackage:\n- name: caf\xe9\n")
    error = lock_error(path, platform="linux-64")
    assert error.line == 3 and "UTF-8" in error.message


@pytest.mark.parametrize("content", ["", "\n  \n"])
def test_empty_file(tmp_path: Path, content: str) -> None:
    error = lock_error(write(tmp_path, "conda-lock.yml", content), platform="linux-64")
    assert "empty" in error.message and str(error).startswith(str(tmp_path))


def test_missing_file_and_directory(tmp_path: Path) -> None:
    assert "cannot read" in lock_error(tmp_path / "nope.yml").message
    assert "cannot read" in lock_error(tmp_path).message


def test_unrecognisable_content(tmp_path: Path) -> None:
    error = lock_error(write(tmp_path, "notes.md", "hello world\n"), platform="linux-64")
    assert "pass a format" in error.message


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    text = (DATA / "prefix-good-pip.explicit-md5.txt").read_text()
    path = write(tmp_path, "x.txt", "\ufeff".encode() + text.encode())
    assert len(load_lock(path, platform="linux-64").packages) == 8


def test_conda_lock_loader_has_the_protocol_shape() -> None:
    loader = CondaLockLoader()
    assert loader.format == "conda-lock"
    assert loader.sniff(GOOD / "conda-lock.yml", (GOOD / "conda-lock.yml").read_text())
    assert not loader.sniff(GOOD / "pixi.lock", (GOOD / "pixi.lock").read_text())


def test_pixi_rejected_by_rattler_points_at_the_line(tmp_path: Path) -> None:
    (tmp_path / "v99").mkdir()
    path = write(tmp_path / "v99", "pixi.lock", "version: 99\nenvironments: {}\npackages: []\n")
    error = lock_error(path, platform="linux-64")
    assert error.line == 1 and "version 99" in error.message
    text = (GOOD / "pixi.lock").read_text().replace(NUMPY_MD5, "zz")
    path = write(tmp_path, "pixi.lock", text)
    error = lock_error(path, platform="linux-64")
    assert error.line == line_of(path, "md5: zz")


def test_crlf_files_read_like_lf(tmp_path: Path) -> None:
    for source in (GOOD / "conda-lock.yml", DATA / "prefix-good-pip.explicit-md5.txt"):
        text = source.read_text().replace("\n", "\r\n")
        path = write(tmp_path, source.name, text.encode())
        assert load_lock(path, platform="linux-64").packages == (
            load_lock(source, platform="linux-64").packages
        )


# --- records are built without validation, so they must be what validation would build ---------

GOLDEN_ENV_EXPORT = (
    "name: prod\nchannels:\n  - conda-forge\ndependencies:\n"
    "  - conda-forge::numpy=1.26.4=py311h64a7726_0\n  - python=3.10\n  - pip:\n"
    "    - foo==1.0\n"
)


def every_sample_lock(tmp_path: Path) -> list[Lock]:
    locks = [load_lock(path, platform="linux-64") for path in sorted(SAMPLES)]
    locks.append(
        load_lock(
            PUBLIC / "conda-lock-install-with-pip-deps/conda-lock.yml", platform="linux-aarch64"
        )
    )
    locks.append(
        load_lock(write(tmp_path, "environment.yml", GOLDEN_ENV_EXPORT), platform="linux-64")
    )
    return locks


def test_constructed_packages_are_valid_models(tmp_path: Path) -> None:
    locks = every_sample_lock(tmp_path)
    assert {lock.format for lock in locks} == set(FORMATS)
    for lock in locks:
        for package in lock.packages:
            assert LockedPackage.model_validate(package.model_dump()) == package, package
            assert set(package.__dict__) == set(LockedPackage.model_fields)
            for value in package.__dict__.values():
                assert value is None or type(value) in (str, int), (package, value)


def test_constructed_locks_are_valid_models(tmp_path: Path) -> None:
    for lock in every_sample_lock(tmp_path):
        assert Lock.model_validate(lock.model_dump()) == lock, lock.source
        assert set(lock.__dict__) == set(Lock.model_fields)
        assert type(lock.kind) is LockKind


def test_record_builders_take_every_model_field() -> None:
    """model_construct fills no gap: a field added to a model must be added to its builder."""
    assert set(inspect.signature(records.locked_package).parameters) == set(
        LockedPackage.model_fields
    )
    assert set(inspect.signature(records.lock).parameters) == set(Lock.model_fields)


def test_record_builders_match_validating_constructors() -> None:
    kwargs: dict[str, Any] = {"name": "numpy", "version": "1.26.4", "md5": NUMPY_MD5, "line": 3}
    assert records.locked_package(**kwargs) == LockedPackage(**kwargs)
    built = records.lock(
        source="x", format="explicit", kind=LockKind.FULL, platform="linux-64", packages=[]
    )
    assert built == Lock(
        source="x", format="explicit", kind=LockKind.FULL, platform="linux-64", packages=[]
    )
    assert built.channels == [] and built.notes == [] and built.environment is None


# --- the line scanner reads plain conda-lock YAML, whatever its spacing ------------------------


def test_conda_lock_scanner_reads_spacing_and_nulls_like_yaml(tmp_path: Path) -> None:
    text = (GOOD / "conda-lock.yml").read_text()
    text = text.replace("  version: 1.26.4\n", "  version:    1.26.4\n")
    text = text.replace("  category: main\n", "  category: ~\n")
    text = text.replace("  optional: false\n", "  optional:\n")
    path = write(tmp_path, "conda-lock.yml", text)
    fast = conda_lock._load_fast(path, text)
    assert fast is not None  # still the line scanner's
    root = conda_lock._root(path, text)
    composed = conda_lock._build(path, root, conda_lock._entries_from_nodes(path, root), "linux-64")
    assert conda_lock._build(path, *fast, "linux-64") == composed
    assert by_name(composed)["numpy"].version == "1.26.4"


@pytest.mark.parametrize(
    "change",
    [
        ("  version: 1.26.4\n", "  version:\t1.26.4\n"),  # a tab after the colon
        ("  version: 1.26.4\n", "  version: |\n    1.26.4\n"),  # a block scalar
        ("  version: 1.26.4\n", "  version: &v 1.26.4\n"),  # an anchor
        ("  version: 1.26.4\n", '  version: "1.26.\\u0034"\n'),  # an escape
        ("- name: numpy\n", "- name: numpy\n  -\n"),
    ],
)
def test_conda_lock_scanner_leaves_what_it_does_not_read_to_yaml(
    tmp_path: Path, change: tuple[str, str]
) -> None:
    text = (GOOD / "conda-lock.yml").read_text()
    assert change[0] in text
    text = text.replace(change[0], change[1], 1)
    assert conda_lock._load_fast(write(tmp_path, "conda-lock.yml", text), text) is None


def test_conda_lock_non_ascii_text_uses_the_scanner_and_control_characters_do_not(
    tmp_path: Path,
) -> None:
    text = (GOOD / "conda-lock.yml").read_text()
    accented = text.replace("category: main", "category: mäin")
    assert conda_lock._load_fast(tmp_path / "a.yml", accented) is not None
    for bad in ("\x0b", "\x7f", "\r", "\u2028"):
        broken = text.replace("category: main", f"category: ma{bad}in", 1)
        assert conda_lock._load_fast(tmp_path / "b.yml", broken) is None, repr(bad)


# --- detection looks at the head of a file and imports only the chosen loader ------------------


def test_detection_reads_only_the_head(tmp_path: Path) -> None:
    header = "# padding\n" * (signatures.HEAD_LIMIT // 10 + 1)
    explicit = (DATA / "prefix-good-pip.explicit-md5.txt").read_text()
    assert not signatures.explicit(signatures.head(header + explicit))
    # The name still says what the file is, and the loader reads all of it.
    lock = load_lock(write(tmp_path, "late.txt", header + explicit), platform="linux-64")
    assert lock.format == "explicit" and len(lock.packages) == 8
    error = lock_error(write(tmp_path, "late.md", header + explicit), platform="linux-64")
    assert "pass a format" in error.message


def test_head_ends_on_a_whole_line() -> None:
    text = "x" * (signatures.HEAD_LIMIT - 3) + "\n@EXPLICIT-and-more\n"
    head = signatures.head(text)
    assert head == "x" * (signatures.HEAD_LIMIT - 3) + "\n"
    assert signatures.head("short\ntext") == "short\ntext"
    one_line = "[" + " " * signatures.HEAD_LIMIT + "]"
    assert signatures.head(one_line) == one_line[: signatures.HEAD_LIMIT]
    assert signatures.golden(signatures.head(one_line))


@pytest.mark.parametrize("path", sorted(SAMPLES), ids=lambda p: str(p.relative_to(DATA)))
def test_each_loader_sniffs_its_own_samples(path: Path) -> None:
    text = path.read_text()
    assert detect.loader_for(SAMPLES[path]).sniff(path, text)
    assert detect.detect(path, text).format == SAMPLES[path]


def test_importing_detection_imports_no_loader() -> None:
    code = (
        "import sys, producer.locks.detect\n"
        "heavy = ('pydantic', 'yaml', 'json', 'rattler', 'worker.models', 'producer.locks.pixi',"
        " 'producer.locks.conda_lock', 'producer.locks.explicit', 'producer.locks.golden',"
        " 'producer.locks.environment_yml')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy or m in heavy))\n"
    )
    repo = Path(__file__).resolve().parent.parent
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=repo
    )
    assert result.stdout.strip() == "[]"


def test_loading_imports_only_the_chosen_loader() -> None:
    sample = str(DATA / "prefix-good-pip.explicit-md5.txt")
    code = (
        "import sys\nfrom pathlib import Path\nfrom producer.locks.detect import load_lock\n"
        f"load_lock(Path({sample!r}), platform='linux-64')\n"
        "print(sorted(m for m in sys.modules if m.startswith('producer.locks.')))\n"
    )
    repo = Path(__file__).resolve().parent.parent
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=repo
    )
    loaded = set(ast.literal_eval(result.stdout.strip()))
    assert "producer.locks.explicit" in loaded
    assert not loaded & {
        "producer.locks.conda_lock",
        "producer.locks.pixi",
        "producer.locks.golden",
        "producer.locks.environment_yml",
        "producer.locks.yaml_nodes",
    }

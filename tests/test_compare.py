"""Conda's matching rules, one finding per difference, and the pip/conda anti-patterns."""

from __future__ import annotations

import pytest

from worker.compare import CompareOptions, compare
from worker.models import FindingKind, Lock, LockedPackage, LockKind, Package

CF = "https://conda.anaconda.org/conda-forge"


def pkg(name: str, version: str, build: str = "h0_0", **kw: object) -> Package:
    fields: dict[str, object] = {"channel": CF, "subdir": "linux-64", **kw}
    return Package(name=name, version=version, build=build, **fields)  # type: ignore[arg-type]


def pip(name: str, version: str) -> Package:
    return Package(
        name=name, version=version, build="pypi_0", manager="pypi", channel="pypi", subdir="pypi"
    )


def full(*entries: LockedPackage) -> Lock:
    return Lock(
        source="l", format="t", kind=LockKind.FULL, platform="linux-64", packages=list(entries)
    )


def spec_lock(*specs: str, pip_specs: tuple[str, ...] = ()) -> Lock:
    from rattler import MatchSpec

    entries = [LockedPackage(name=MatchSpec(s).name.normalized, spec=s) for s in specs]
    entries += [
        LockedPackage(name=s.split("=")[0].split(">")[0].split("<")[0], manager="pypi", spec=s)
        for s in pip_specs
    ]
    return Lock(source="l", format="t", kind=LockKind.SPEC, platform="linux-64", packages=entries)


def locked(p: Package, **changes: object) -> LockedPackage:
    base = LockedPackage(
        name=p.name,
        manager=p.manager,
        version=p.version,
        build=p.build if p.manager == "conda" else None,
        channel=p.channel if p.manager == "conda" else None,
        subdir=p.subdir if p.manager == "conda" else None,
        md5=p.md5,
        sha256=p.sha256,
    )
    return base.model_copy(update=changes)


def kinds(findings: list) -> list[tuple[str, FindingKind]]:  # type: ignore[type-arg]
    return [(f.name, f.kind) for f in findings]


@pytest.mark.parametrize(
    "spec, version, ok",
    [
        ("numpy=1.24", "1.24.3", True),  # = means 1.24.*
        ("numpy=1.24", "1.240", False),
        ("numpy 1.24", "1.24.3", False),  # space means exact
        ("numpy 1.24", "1.24.0", True),  # ...and 1.24 == 1.24.0 in conda
        ("numpy>=1.24,<2", "2.0.0rc1", True),  # conda admits the pre-release
        ("numpy>=1.24,<2.0a0", "2.0.0rc1", False),
        ("numpy>1.0a1", "1.0.dev0", True),  # 1.0.dev0 > 1.0a1 in conda
        ("numpy", "7", True),
    ],
)
def test_conda_version_semantics(spec: str, version: str, ok: bool) -> None:
    findings = compare([pkg("numpy", version)], spec_lock(spec))
    assert kinds(findings) == ([] if ok else [("numpy", FindingKind.VERSION)])


def test_local_version_sorts_before_release_in_conda() -> None:
    assert compare([pkg("a", "1.0+local")], spec_lock("a<1.0")) == []


def test_exact_build_in_spec() -> None:
    findings = compare(
        [pkg("openssl", "3.3.1", "h4ab18f5_1")], spec_lock("openssl 3.3.1 h4ab18f5_0")
    )
    assert kinds(findings) == [("openssl", FindingKind.BUILD)]
    assert (
        compare([pkg("openssl", "3.3.1", "h4ab18f5_0")], spec_lock("openssl 3.3.1 h4ab18f5_0"))
        == []
    )


def test_spec_channel_and_subdir_are_checked_although_rattler_ignores_them() -> None:
    other = pkg("numpy", "1.26.4", channel="https://conda.anaconda.org/other")
    assert kinds(compare([other], spec_lock("conda-forge::numpy"))) == [
        ("numpy", FindingKind.CHANNEL)
    ]
    assert compare([pkg("numpy", "1.26.4")], spec_lock("conda-forge::numpy")) == []
    assert kinds(compare([pkg("numpy", "1.26.4")], spec_lock("conda-forge/noarch::numpy"))) == [
        ("numpy", FindingKind.CHANNEL)
    ]


def test_spec_lock_reports_no_extras_unless_strict() -> None:
    env = [pkg("numpy", "1.26.4"), pkg("zlib", "1.3"), pip("foo", "1.0")]
    lock = spec_lock("numpy")
    assert compare(env, lock) == []
    strict = compare(env, lock, CompareOptions(strict=True))
    assert kinds(strict) == [("foo", FindingKind.UNLOCKED_PIP), ("zlib", FindingKind.EXTRA)]


def test_full_lock_each_single_change_gives_exactly_its_finding() -> None:
    base = pkg("numpy", "1.26.4", "py311_0", md5="a" * 32, sha256="b" * 64)
    cases = {
        FindingKind.VERSION: {"version": "1.26.5"},
        FindingKind.BUILD: {"build": "py311_1"},
        FindingKind.CHANNEL: {"channel": "https://repo.anaconda.com/pkgs/main"},
        FindingKind.HASH: {"sha256": "c" * 64},
    }
    for kind, change in cases.items():
        findings = compare([base], full(locked(base, **change)))
        assert kinds(findings) == [("numpy", kind)], kind
        assert findings[0].expected and findings[0].actual


def test_version_change_with_other_differences_is_still_one_finding() -> None:
    base = pkg("numpy", "1.26.4", "py311_0", sha256="b" * 64)
    findings = compare(
        [base], full(locked(base, version="1.26.5", build="py311_1", sha256="c" * 64))
    )
    assert kinds(findings) == [("numpy", FindingKind.VERSION)]
    assert "build differs" in findings[0].message and "sha256 differs" in findings[0].message


def test_hash_compared_only_when_both_sides_have_one() -> None:
    base = pkg("numpy", "1.26.4", md5="a" * 32)
    assert compare([base], full(locked(base, md5=None, sha256="c" * 64))) == []
    assert kinds(compare([base], full(locked(base, md5="f" * 32)))) == [("numpy", FindingKind.HASH)]


def test_equal_conda_versions_spelled_differently_match() -> None:
    base = pkg("tzdata", "2024.0")
    assert compare([base], full(locked(base, version="2024"))) == []


def test_missing_extra_and_unlocked_pip() -> None:
    env = [pkg("a", "1"), pkg("extra", "1"), pip("loose", "0.1")]
    lock = full(locked(pkg("a", "1")), locked(pkg("gone", "2")))
    assert kinds(compare(env, lock)) == [
        ("extra", FindingKind.EXTRA),
        ("gone", FindingKind.MISSING),
        ("loose", FindingKind.UNLOCKED_PIP),
    ]


def test_pip_over_conda_is_one_shadow_finding() -> None:
    conda_requests = pkg("requests", "2.32.3", clobbered=True)
    env = [conda_requests, pip("requests", "2.99.0")]
    findings = compare(env, full(locked(pkg("requests", "2.32.3"))))
    assert kinds(findings) == [("requests", FindingKind.PIP_SHADOWS_CONDA)]
    assert findings[0].actual == "2.99.0 (pypi)"


def test_pip_over_unlocked_conda_package_is_reported_even_for_spec_locks() -> None:
    env = [pkg("numpy", "1.26.4"), pkg("six", "1.16", clobbered=True), pip("six", "1.17")]
    assert kinds(compare(env, spec_lock("numpy"))) == [("six", FindingKind.PIP_SHADOWS_CONDA)]


def test_pypi_entries_use_pep440() -> None:
    env = [pip("foo", "1.0")]
    assert compare(env, full(locked(pip("foo", "1.0.0")))) == []
    assert kinds(compare(env, full(locked(pip("foo", "1.1"))))) == [("foo", FindingKind.VERSION)]
    assert compare(env, spec_lock(pip_specs=("foo==1.0",))) == []
    assert kinds(compare(env, spec_lock(pip_specs=("foo>=2",)))) == [("foo", FindingKind.VERSION)]
    assert compare([pip("foo", "2.0rc1")], spec_lock(pip_specs=("foo>=1.5",))) == []


def test_pip_requirement_satisfied_by_conda_package() -> None:
    assert compare([pkg("requests", "2.32.3")], spec_lock(pip_specs=("requests>=2",))) == []


def test_ignore_and_ignore_build() -> None:
    env = [pkg("ca-certificates", "2025.1.1"), pkg("numpy", "1.26.4", "py311_1", md5="1" * 32)]
    lock = full(
        locked(pkg("ca-certificates", "2024.7.4")),
        locked(pkg("numpy", "1.26.4", "py311_0", md5="2" * 32)),
    )
    opts = CompareOptions(ignore=frozenset({"ca-certificates"}), ignore_build=frozenset({"numpy"}))
    assert compare(env, lock, opts) == []
    assert kinds(compare(env, lock, CompareOptions(ignore_build=frozenset({"numpy"})))) == [
        ("ca-certificates", FindingKind.VERSION)
    ]


def test_credentials_in_channel_urls_neither_matter_nor_show() -> None:
    from worker.channels import canonical_channel, mask_url

    with_token = "https://conda.anaconda.org/t/tk-123-abc/conda-forge/linux-64/"
    with_user = "https://bob:s3cret@repo.example.com/conda/main"
    assert canonical_channel(with_token) == "https://conda.anaconda.org/conda-forge"
    assert canonical_channel(with_user) == "https://repo.example.com/conda/main"
    assert "tk-123" not in mask_url(with_token + "x.conda")
    assert "s3cret" not in mask_url(with_user) and "***@repo.example.com" in mask_url(with_user)
    have = pkg("numpy", "1.26.4", channel=canonical_channel(with_token))
    want = locked(pkg("numpy", "1.26.4"), channel="conda-forge")
    assert compare([have], full(want)) == []

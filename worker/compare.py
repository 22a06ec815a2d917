"""Compare a snapshot with a lock using conda's own semantics.

Versions of conda records are compared with rattler (conda's ordering: `1.0 == 1.0.0`,
`1.0+local < 1.0`, `1.0.dev0 > 1.0a1`); MatchSpecs are evaluated by rattler, except channel
and subdir, which rattler's `MatchSpec.matches` ignores and we check ourselves. pypi records
use PEP 440. Each package yields at most one finding — the most significant difference —
so that one drift is one line in a report, with the lesser differences in its message.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING

from worker.channels import canonical_channel, channel_display_name, mask_url
from worker.models import Finding, FindingKind, Lock, LockedPackage, LockKind, Package
from worker.snapshot.pip_dists import normalize_pypi_name

if TYPE_CHECKING:
    from rattler import MatchSpec, PackageRecord, Version

# rattler and packaging are imported where they are needed: a clean check against a full
# lock compares equal strings and never needs them, which keeps `check --local` start-up short.


@dataclass(frozen=True)
class CompareOptions:
    """What the user chose to tolerate."""

    strict: bool = False
    ignore: frozenset[str] = field(default_factory=frozenset)
    ignore_build: frozenset[str] = field(default_factory=frozenset)


def compare(
    packages: Sequence[Package], lock: Lock, options: CompareOptions | None = None
) -> list[Finding]:
    """Every difference between what is installed and what the lock expects."""
    opts = options or CompareOptions()
    ignore = {normalize_pypi_name(n) for n in opts.ignore} | set(opts.ignore)
    conda: dict[str, Package] = {}
    pypi: dict[str, Package] = {}
    for pkg in packages:
        (pypi if pkg.manager == "pypi" else conda)[pkg.name] = pkg
    findings: list[Finding] = []
    accounted_conda: set[str] = set()
    accounted_pypi: set[str] = set()

    for want in lock.packages:
        if want.name in ignore:
            continue
        if want.manager == "conda":
            accounted_conda.add(want.name)
            have_pip = pypi.get(want.name)
            have = conda.get(want.name)
            if have_pip is not None:
                accounted_pypi.add(want.name)
            if have is None:
                findings.append(_missing(want, have_pip))
            elif have.clobbered or have_pip is not None:
                findings.append(_shadowed(want, have, have_pip))
            elif not _identical(want, have):
                finding = _check_conda(want, have, want.name in opts.ignore_build)
                if finding:
                    findings.append(finding)
        else:
            accounted_pypi.add(want.name)
            have = pypi.get(want.name)
            if have is None:
                have = conda.get(want.name)
                if have is not None:
                    accounted_conda.add(want.name)
            if have is None:
                findings.append(_missing(want, None))
            else:
                finding = _check_pypi(want, have)
                if finding:
                    findings.append(finding)

    report_extras = lock.kind is LockKind.FULL or opts.strict
    for name, pip_pkg in sorted(pypi.items()):
        if name in accounted_pypi or name in ignore:
            continue
        if name in conda:
            accounted_conda.add(name)
            findings.append(_shadowed(None, conda[name], pip_pkg))
        elif report_extras:
            findings.append(
                Finding(
                    kind=FindingKind.UNLOCKED_PIP,
                    name=name,
                    manager="pypi",
                    actual=describe(pip_pkg),
                    message="installed by pip and not in the lock",
                )
            )
    if report_extras:
        for name, pkg in sorted(conda.items()):
            if name not in accounted_conda and name not in ignore:
                findings.append(
                    Finding(
                        kind=FindingKind.EXTRA,
                        name=name,
                        actual=describe(pkg),
                        message="installed but not in the lock",
                    )
                )
    findings.sort(key=lambda f: (f.name, f.kind.value))
    return findings


def describe(pkg: Package) -> str:
    """One-line display form: `1.26.4 py311h64a7726_0 conda-forge/linux-64` or `1.0 (pypi)`."""
    if pkg.manager == "pypi":
        return f"{pkg.version} (pypi)"
    where = channel_display_name(pkg.channel) if pkg.channel else "?"
    return f"{pkg.version} {pkg.build} {where}/{pkg.subdir}".rstrip("/")


def describe_locked(want: LockedPackage) -> str:
    if want.spec is not None:
        return mask_url(want.spec)
    if want.manager == "pypi":
        return f"{want.version} (pypi)"
    parts = [want.version or "*"]
    if want.build:
        parts.append(want.build)
    if want.channel:
        parts.append(f"{channel_display_name(want.channel)}/{want.subdir or ''}".rstrip("/"))
    return " ".join(parts)


def _missing(want: LockedPackage, have_other: Package | None) -> Finding:
    message = "not installed"
    actual = None
    if have_other is not None:
        actual = describe(have_other)
        message = f"not installed by {want.manager}; a {have_other.manager} package has this name"
    return Finding(
        kind=FindingKind.MISSING,
        name=want.name,
        manager=want.manager,
        expected=describe_locked(want),
        actual=actual,
        message=message,
    )


def _shadowed(want: LockedPackage | None, conda_pkg: Package, pip_pkg: Package | None) -> Finding:
    actual = describe(pip_pkg) if pip_pkg else "dist-info missing"
    return Finding(
        kind=FindingKind.PIP_SHADOWS_CONDA,
        name=conda_pkg.name,
        manager="conda",
        expected=describe_locked(want) if want else describe(conda_pkg),
        actual=actual,
        message=(
            f"pip replaced the conda package {conda_pkg.name} {conda_pkg.version}"
            if pip_pkg
            else "the conda package's dist-info is gone; conda no longer lists it"
        ),
    )


@lru_cache(maxsize=65536)
def _version(text: str) -> Version | None:
    from rattler import Version

    try:
        return Version(text)
    except Exception:  # rattler raises its own exception types for unparsable versions
        return None


def _same_version(expected: str, actual: str) -> bool:
    if expected == actual:
        return True
    a, b = _version(expected), _version(actual)
    return a is not None and b is not None and a == b


def _check_conda(want: LockedPackage, have: Package, ignore_build: bool) -> Finding | None:
    problems: list[tuple[FindingKind, str]] = []
    if want.spec is not None:
        problems.extend(_spec_problems(want.spec, have, ignore_build))
    else:
        if want.version is not None and not _same_version(want.version, have.version):
            problems.append((FindingKind.VERSION, "version differs"))
        if want.build and not ignore_build and want.build != have.build:
            problems.append((FindingKind.BUILD, "build differs"))
        if want.channel and have.channel and canonical_channel(want.channel) != have.channel:
            problems.append((FindingKind.CHANNEL, "channel differs"))
        if want.subdir and have.subdir and want.subdir != have.subdir:
            problems.append((FindingKind.CHANNEL, "subdir differs"))
        if not ignore_build:
            problems.extend(_hash_problems(want, have))
    if not problems:
        return None
    order = list(FindingKind)
    problems.sort(key=lambda p: order.index(p[0]))
    kind = problems[0][0]
    return Finding(
        kind=kind,
        name=want.name,
        manager="conda",
        expected=describe_locked(want),
        actual=describe(have),
        message="; ".join(dict.fromkeys(msg for _, msg in problems)),
    )


def _identical(want: LockedPackage, have: Package) -> bool:
    """The common case, decided with string equality alone: the exact pinned artifact.

    Anything short of identical goes to `_check_conda`, which applies conda's semantics.
    """
    if want.spec is not None or want.version != have.version:
        return False
    if want.build and want.build != have.build:
        return False
    if want.subdir and have.subdir and want.subdir != have.subdir:
        return False
    if want.channel and have.channel and canonical_channel(want.channel) != have.channel:
        return False
    if want.sha256 and have.sha256:
        return want.sha256 == have.sha256 or want.sha256.lower() == have.sha256.lower()
    if want.md5 and have.md5:
        return want.md5 == have.md5 or want.md5.lower() == have.md5.lower()
    return True


def _hash_problems(want: LockedPackage, have: Package) -> Iterable[tuple[FindingKind, str]]:
    """Compare the strongest hash both sides have; never guess when one side has none."""
    if want.sha256 and have.sha256:
        if want.sha256.lower() != have.sha256.lower():
            yield FindingKind.HASH, "sha256 differs"
    elif want.md5 and have.md5 and want.md5.lower() != have.md5.lower():
        yield FindingKind.HASH, "md5 differs"


@lru_cache(maxsize=4096)
def _matchspec(spec: str) -> MatchSpec:
    from rattler import MatchSpec

    return MatchSpec(spec)


def _spec_problems(
    spec: str, have: Package, ignore_build: bool
) -> Iterable[tuple[FindingKind, str]]:
    from rattler import VersionSpec

    ms = _matchspec(spec)
    version = _version(have.version)
    if ms.version is not None and (version is None or not VersionSpec(ms.version).matches(version)):
        yield FindingKind.VERSION, f"{have.version} does not satisfy {ms.version}"
    elif not ignore_build and not ms.matches(_record(have)):
        yield FindingKind.BUILD, f"build {have.build} does not satisfy {spec}"
    if ms.channel is not None:
        wanted = canonical_channel(ms.channel.base_url)
        if wanted != have.channel:
            yield FindingKind.CHANNEL, f"channel is not {channel_display_name(wanted)}"
    if ms.subdir is not None and ms.subdir != have.subdir:
        yield FindingKind.CHANNEL, f"subdir is not {ms.subdir}"


def _record(pkg: Package) -> PackageRecord:
    from rattler import BuildString, PackageRecord

    return PackageRecord(
        name=pkg.name,
        version=pkg.version,
        build=BuildString(pkg.build),
        build_number=pkg.build_number,
        subdir=pkg.subdir or "noarch",
        md5=bytes.fromhex(pkg.md5) if pkg.md5 else None,
        sha256=bytes.fromhex(pkg.sha256) if pkg.sha256 else None,
    )


def _check_pypi(want: LockedPackage, have: Package) -> Finding | None:
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.version import InvalidVersion
    from packaging.version import Version as PepVersion

    ok = True
    if want.spec is not None:
        try:
            req = Requirement(want.spec)
        except InvalidRequirement:
            return None  # the loader already noted an unparsable line
        try:
            ok = req.specifier.contains(PepVersion(have.version), prereleases=True)
        except InvalidVersion:
            ok = not req.specifier or str(req.specifier).lstrip("=") == have.version
    elif want.version is not None:
        try:
            ok = PepVersion(want.version) == PepVersion(have.version)
        except InvalidVersion:
            ok = want.version == have.version
    if ok:
        return None
    return Finding(
        kind=FindingKind.VERSION,
        name=want.name,
        manager="pypi",
        expected=describe_locked(want),
        actual=describe(have),
        message="version differs" + (" (installed by conda)" if have.manager == "conda" else ""),
    )

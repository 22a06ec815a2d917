"""Properties of the verdict: a lock written from a snapshot verifies clean against it, and
changing one package's version, build or channel yields exactly that finding, nothing else.

The lock goes through the real golden-host writer (`conda list --json` rendering) and the
real loader, so the property covers the whole round trip a user relies on when they take a
known-good host as the lock for the others.
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from producer.locks.detect import load_lock
from worker.compare import compare
from worker.models import FindingKind, Package, Snapshot
from worker.snapshot import conda_json

CHANNELS = (
    "https://conda.anaconda.org/conda-forge",
    "https://conda.anaconda.org/bioconda",
    "https://repo.anaconda.com/pkgs/main",
)

names = st.from_regex(r"[a-z][a-z0-9]{0,6}(-[a-z0-9]{1,4})?", fullmatch=True)
versions = st.lists(st.integers(0, 40), min_size=1, max_size=3).map(
    lambda parts: ".".join(map(str, parts))
)
builds = st.tuples(st.from_regex(r"[a-z0-9]{1,8}", fullmatch=True), st.integers(0, 9)).map(
    lambda b: f"{b[0]}_{b[1]}"
)


@st.composite
def conda_packages(draw: st.DrawFn) -> Package:
    build = draw(builds)
    return Package(
        name=draw(names),
        version=draw(versions),
        build=build,
        build_number=int(build.rsplit("_", 1)[1]),
        channel=draw(st.sampled_from(CHANNELS)),
        subdir=draw(st.sampled_from(("linux-64", "noarch"))),
    )


@st.composite
def pip_packages(draw: st.DrawFn) -> Package:
    return Package(
        name=draw(names),
        version=draw(versions),
        build="pypi_0",
        manager="pypi",
        channel="pypi",
        subdir="pypi",
    )


@st.composite
def environments(draw: st.DrawFn) -> list[Package]:
    conda = draw(st.lists(conda_packages(), min_size=1, max_size=12, unique_by=lambda p: p.name))
    taken = {p.name for p in conda}
    pip = draw(
        st.lists(pip_packages(), max_size=4, unique_by=lambda p: p.name).map(
            lambda ps: [p for p in ps if p.name not in taken]
        )
    )
    return conda + pip


def golden_lock(packages: list[Package], directory: Path) -> Path:
    snap = Snapshot(prefix="/env", source="test", platform="linux-64", packages=packages)
    path = directory / "golden.json"
    path.write_text(conda_json.render(snap), encoding="utf-8")
    return path


SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(environments())
def test_lock_written_from_a_snapshot_verifies_clean(packages: list[Package]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        lock = load_lock(golden_lock(packages, Path(tmp)), platform="linux-64")
    assert compare(packages, lock) == []


@SETTINGS
@given(environments(), st.data())
def test_one_change_yields_exactly_that_finding(
    packages: list[Package], data: st.DataObject
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        lock = load_lock(golden_lock(packages, Path(tmp)), platform="linux-64")
    conda = [p for p in packages if p.manager == "conda"]
    victim = data.draw(st.sampled_from(conda))
    kind = data.draw(st.sampled_from([FindingKind.VERSION, FindingKind.BUILD, FindingKind.CHANNEL]))
    if kind is FindingKind.VERSION:
        changed = replace(victim, version=victim.version + ".1")
    elif kind is FindingKind.BUILD:
        changed = replace(victim, build=victim.build + "x")
    else:
        other = data.draw(st.sampled_from([c for c in CHANNELS if c != victim.channel]))
        changed = replace(victim, channel=other)
    drifted = [changed if p is victim else p for p in packages]
    findings = compare(drifted, lock)
    assert [(f.kind, f.name) for f in findings] == [(kind, victim.name)]

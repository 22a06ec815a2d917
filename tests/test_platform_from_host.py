"""Which platforms a lock holds, and which lock entries a target's task carries."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from producer.fleet import FleetCheck, Target
from producer.locks.platforms import COMMON_PLATFORMS, lock_platforms
from tests.support import condafactory as cf
from tests.support import lockfiles
from worker.broker import BrokerURL
from worker.registry import HostInfo, register

DATA = Path(__file__).parent / "data"


@pytest.mark.parametrize(
    "path, expected",
    [
        ("public/conda-lock-install-with-pip-deps/conda-lock.yml", ["linux-64", "linux-aarch64"]),
        ("public/pixi-v7-old-lock-file/pixi.lock", ["linux-64", "osx-64", "osx-arm64", "win-64"]),
        ("public/conda-lock-pip-with-platform-selector/environment.yml", ["linux-64", "osx-arm64"]),
        ("public/conda-lock-zlib/conda-linux-64.lock", ["linux-64"]),
        ("prefix-good-pip.conda-list.json", ["linux-64"]),
        ("prefix-good-pip.export.txt", ["linux-64"]),
        ("locks-for-prefix-good-pip/environment.yml", None),
    ],
)
def test_lock_platforms_per_format(path: str, expected: list[str] | None) -> None:
    assert lock_platforms(DATA / path) == expected


def test_selectors_without_platforms_mean_every_common_platform(tmp_path: Path) -> None:
    spec = tmp_path / "environment.yml"
    spec.write_text("dependencies:\n  - python\n  - pywin32  # [win]\n")
    assert lock_platforms(spec) == sorted(COMMON_PLATFORMS)


def test_unregistered_targets_get_every_platform_registered_ones_their_own(
    redis_client: redis.Redis, redis_server: object, make_prefix: cf.PrefixFactory, tmp_path: Path
) -> None:
    prefix = make_prefix()
    lock = tmp_path / "conda-lock.yml"
    lock.write_text(lockfiles.conda_lock({"linux-64": prefix, "osx-arm64": prefix}))
    register(redis_client, HostInfo(host="mac", platform="osx-arm64"))
    register(redis_client, HostInfo(host="win", platform="win-64"))
    check = FleetCheck(BrokerURL.parse(redis_server.url), timeout=1)  # type: ignore[attr-defined]
    infos = {h.host: h for h in check.registry()}

    def task_locks(host: str) -> dict[str, str] | str:
        return check._task_locks(Target(host, lock), infos.get(host), {}, {}, {})

    assert set(task_locks("new")) == {"linux-64", "osx-arm64"}
    assert set(task_locks("mac")) == {"osx-arm64"}
    assert task_locks("win") == (
        "lock has no packages for platform win-64; the lock has: linux-64, osx-arm64"
    )

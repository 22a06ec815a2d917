"""The worker's task body against a real Redis: lock by digest, verdict memo, refusals."""

from __future__ import annotations

import hashlib
from pathlib import Path

import redis

from producer.locks.detect import load_lock
from tests.support import condafactory as cf
from tests.support import lockfiles
from worker import codec
from worker.config import WorkerConfig
from worker.models import FindingKind, Status
from worker.registry import lock_key
from worker.service import Verifier, reply_key, unpack_reply
from worker.snapshot.conda_meta import CondaMetaSource


def store_lock(client: redis.Redis, path: Path) -> str:
    data = codec.encode(load_lock(path, platform="linux-64").model_dump(mode="json"))
    digest = hashlib.sha256(data).hexdigest()
    client.set(lock_key(digest), data)
    return digest


def test_repeated_checks_follow_every_change(
    redis_client: redis.Redis,
    make_prefix: cf.PrefixFactory,
    conda_channel: cf.Channel,
    tmp_path: Path,
) -> None:
    prefix = make_prefix()
    lock = tmp_path / "conda-lock.yml"
    lock.write_text(lockfiles.conda_lock({"linux-64": prefix}))
    digest = store_lock(redis_client, lock)
    source = CondaMetaSource(cache=True)
    verifier = Verifier(
        WorkerConfig(host="w", environments={"prod": str(prefix)}), redis_client, source
    )
    locks = {"linux-64": digest}
    first = verifier.verify(locks, None, {})
    assert first.status is Status.OK
    assert source.snapshot(prefix).packages is source.snapshot(prefix).packages  # unchanged
    assert verifier.verify(locks, None, {}).status is Status.OK
    cf.replace_packages(conda_channel, ["numpy ==1.26.5"], prefix)
    drifted = verifier.verify(locks, None, {})
    assert [(f.kind, f.name) for f in drifted.findings] == [(FindingKind.VERSION, "numpy")]
    cf.add_pip_package(prefix, "leftpad", "1.0")
    kinds = {(f.kind, f.name) for f in verifier.verify(locks, None, {}).findings}
    assert kinds == {(FindingKind.VERSION, "numpy"), (FindingKind.UNLOCKED_PIP, "leftpad")}
    relaxed = verifier.verify(locks, None, {"ignore": ["numpy", "leftpad"]})
    assert relaxed.status is Status.OK  # options are part of the memo key


def test_handle_pushes_a_verdict_even_for_a_bad_request(
    redis_client: redis.Redis, make_prefix: cf.PrefixFactory
) -> None:
    prefix = make_prefix()
    verifier = Verifier(
        WorkerConfig(host="w", environments={"prod": str(prefix)}), redis_client, CondaMetaSource()
    )
    missing = {"linux-64": "0" * 64}
    verifier.handle("audit-1", missing, None, {})  # a lock the broker does not hold
    verifier.handle("audit-1", {"linux-64": "not-a-digest"}, "prod", {})
    verifier.handle("audit-1", missing, "/etc", {})
    verifier.handle("../../evil key", missing, None, {})  # nowhere safe to answer: dropped
    items: list[bytes] = redis_client.lrange(reply_key("audit-1"), 0, -1)  # type: ignore[assignment]
    errors = []
    for item in items:
        host, signature, payload = unpack_reply(item)
        assert signature == ""  # no fleet key: unsigned
        assert host == "w"
        errors.append(codec.decode(payload)["error"])
    assert len(errors) == 3
    assert "not in the broker" in errors[0]
    assert "malformed lock digest" in errors[1]
    assert "is not allowed" in errors[2]
    assert 0 < redis_client.ttl(reply_key("audit-1")) <= 3600
    assert redis_client.keys("*evil*") == []

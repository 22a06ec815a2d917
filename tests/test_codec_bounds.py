"""The codec's object bounds: real large payloads pass, memory bombs below the byte cap fail.

A bomb is a payload that is small on the wire and in msgpack bytes but expands into
millions of Python objects; peak memory is measured with tracemalloc around `decode`
only, as a bound, never as a timing.
"""

from __future__ import annotations

import contextlib
import hashlib
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import brotli
import msgpack
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from producer.locks.detect import load_lock
from worker import codec
from worker.codec import CodecError, decode, encode
from worker.models import Finding, FindingKind, HostReport, Lock, Status

MIB = 1024 * 1024


def conda_lock_text(packages: int) -> str:
    """A conda-lock v1 file shaped like conda-lock's own output, with distinct hashes."""
    entries = []
    for i in range(packages):
        name = f"python-package-number-{i}"
        version = f"{i % 7}.{i % 13}.{i % 31}"
        build = f"py311h{hashlib.md5(str(i).encode()).hexdigest()[:7]}_{i % 4}"
        entries.append(
            {
                "name": name,
                "version": version,
                "manager": "conda",
                "platform": "linux-64",
                "dependencies": {"python": ">=3.11,<3.12.0a0"},
                "url": f"https://conda.anaconda.org/conda-forge/linux-64/{name}-{version}-{build}.conda",
                "hash": {
                    "md5": hashlib.md5(name.encode()).hexdigest(),
                    "sha256": hashlib.sha256(name.encode()).hexdigest(),
                },
                "category": "main",
                "optional": False,
            }
        )
    doc = {
        "version": 1,
        "metadata": {
            "content_hash": {"linux-64": "0" * 64},
            "channels": [{"url": "conda-forge", "used_env_vars": []}],
            "platforms": ["linux-64"],
            "sources": ["environment.yml"],
        },
        "package": entries,
    }
    return yaml.safe_dump(doc, sort_keys=False)


def big_verdict(findings: int) -> dict[str, Any]:
    kinds = list(FindingKind)
    return HostReport(
        host="web-017.prod.example.org",
        status=Status.DRIFT,
        environment="base",
        prefix="/opt/conda/envs/app",
        platform="linux-64",
        lock_source="conda-lock.yml",
        lock_digest="sha256:" + "ab" * 32,
        findings=[
            Finding(
                kind=kinds[i % len(kinds)],
                name=f"python-package-number-{i}",
                expected=f"1.{i}.0=py311h{i:07x}_0",
                actual=f"1.{i}.1=py311h{i:07x}_1",
                message=f"conda-lock.yml:{10 + i}: installed 1.{i}.1 differs from locked 1.{i}.0",
            )
            for i in range(findings)
        ],
        packages=findings,
        checked_at=1722000000.125,
        duration_ms=41.5,
        lockstep_version="0.1.0",
    ).model_dump(mode="json")


def wire(value: Any) -> bytes:
    """A payload made by hand, as an attacker with broker access would."""
    packed: bytes = msgpack.packb({"v": 1, "d": value}, use_bin_type=True)
    compressed: bytes = brotli.compress(packed, quality=11)
    return codec.MAGIC + compressed


def raw_wire(body: bytes) -> bytes:
    """Wrap hand-built msgpack bytes for `d` in the envelope."""
    compressed: bytes = brotli.compress(b"\x82\xa1v\x01\xa1d" + body, quality=11)
    return codec.MAGIC + compressed


def peak_bytes(action: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        with contextlib.suppress(CodecError):
            action()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@contextlib.contextmanager
def always_walk() -> Iterator[None]:
    """Send even small payloads through the object walk, as large ones go."""
    saved = codec._WALK_ABOVE
    codec._WALK_ABOVE = 0
    try:
        yield
    finally:
        codec._WALK_ABOVE = saved


# -------------------------------------------------------------------- real payloads pass


def test_a_5000_package_lock_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "conda-lock.yml"
    path.write_text(conda_lock_text(5000))
    lock = load_lock(path, platform="linux-64")
    assert len(lock.packages) == 5000
    dumped = lock.model_dump(mode="json")
    packed = msgpack.packb({"v": 1, "d": dumped}, use_bin_type=True)
    assert len(packed) > codec._WALK_ABOVE, "the lock must exercise the object walk"
    assert Lock.model_validate(decode(encode(dumped, quality=5))) == lock


def test_a_5000_finding_verdict_round_trips() -> None:
    verdict = big_verdict(5000)
    assert len(msgpack.packb({"v": 1, "d": verdict}, use_bin_type=True)) > codec._WALK_ABOVE
    assert decode(encode(verdict)) == verdict


# ----------------------------------------------------------------------- bombs are refused


def test_the_904_byte_bomb_of_4_million_empty_maps_is_refused_cheaply() -> None:
    bomb = wire([{}] * 4_000_000)
    assert len(bomb) < 1024, len(bomb)
    with pytest.raises(CodecError, match="list of 4000000 items"):
        decode(bomb)
    assert peak_bytes(lambda: decode(bomb)) < 50 * MIB


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        (lambda: [[{}] * 100_000 for _ in range(40)], "more than 500000 objects"),
        (lambda: [[[]] * 100_000 for _ in range(40)], "more than 500000 objects"),
        (lambda: [{"": None}] * 100_000 * 5 + [1], "list of 500001 items"),
        (lambda: {"k": [[{"": {}}] * 50_000] * 30}, "more than 500000 objects"),
    ],
    ids=["lists-of-empty-maps", "lists-of-empty-lists", "one-entry-maps", "nested"],
)
def test_bombs_spread_over_many_lists_are_refused(shape: Callable[[], Any], message: str) -> None:
    bomb = wire(shape())
    with pytest.raises(CodecError, match=message):
        decode(bomb)
    assert peak_bytes(lambda: decode(bomb)) < 50 * MIB


def test_short_strings_in_still_open_lists_are_refused_before_they_are_built() -> None:
    # 45 lists, each holding 50,000 two-character strings and then the next list: every
    # string exists before any list closes (2.25 M strings, ~130 MiB), so only a walk ahead
    # of unpacking stops it.
    level = b"\xdd" + (50_001).to_bytes(4, "big") + b"\xa2ab" * 50_000
    bomb = raw_wire(level * 45 + b"\xc0")
    assert len(bomb) < 64 * 1024
    with pytest.raises(CodecError, match="more than 500000 objects"):
        decode(bomb)
    assert peak_bytes(lambda: decode(bomb)) < 50 * MIB
    body = b"".join(b"\x9f" + b"\xa2ab" * 14 for _ in range(300_000)) + b"\xc0"
    with pytest.raises(CodecError, match="nested deeper"):
        decode(raw_wire(body))
    assert peak_bytes(lambda: decode(raw_wire(body))) < 50 * MIB


def test_per_item_limits_apply_to_small_payloads_too() -> None:
    with pytest.raises(CodecError, match="corrupt payload"):
        decode(wire({"k": {str(i): i for i in range(codec._MAX_MAP_LEN + 1)}}))
    with pytest.raises(CodecError, match="corrupt payload"):
        decode(wire({"k": "x" * (codec._MAX_STR_LEN + 1)}), max_size=4 * MIB)
    with pytest.raises(CodecError, match="corrupt payload"):
        decode(wire({"k": b"x" * (codec._MAX_BIN_LEN + 1)}), max_size=4 * MIB)
    # A header claiming more items than the buffer holds is refused before msgpack presizes.
    with pytest.raises(CodecError, match="corrupt payload"):
        decode(raw_wire(b"\xdd" + (90_000).to_bytes(4, "big")))


def test_the_walk_refuses_what_unpacking_refuses() -> None:
    with always_walk():
        for body, message in [
            (b"\xc1", "never used"),
            (b"\xd4\x05\x00", "ext type"),
            (b"\xc7\x01\x05\x00", "ext type"),
            (b"\x92\x01", "ends inside"),
            (b"\xa5ab", "ends inside|bytes left"),
        ]:
            with pytest.raises(CodecError, match=message):
                decode(raw_wire(body))
        with pytest.raises(CodecError, match="corrupt"):
            decode(codec.MAGIC + brotli.compress(msgpack.packb({"v": 1, "d": {}}) + b"\x00"))


# ----------------------------------------------------------------------------- properties

_keys = st.text(max_size=12)
_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=40)
    | st.binary(max_size=300)
)
_trees = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=8) | st.dictionaries(_keys, inner, max_size=8),
    max_leaves=60,
)


def nodes(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + sum(1 + nodes(v) for v in value.values())
    if isinstance(value, list):
        return 1 + sum(nodes(v) for v in value)
    return 1


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(_keys, _trees, max_size=6))
def test_walked_trees_round_trip_and_are_counted_exactly(tree: dict[str, Any]) -> None:
    packed = bytearray(msgpack.packb({"v": 1, "d": tree}, use_bin_type=True))
    assert codec._walk(packed) == nodes({"v": 1, "d": tree})
    with always_walk():
        assert decode(encode(tree)) == tree
    assert decode(encode(tree)) == tree


_mutations = st.lists(
    st.tuples(
        st.sampled_from(["flip", "drop", "insert"]),
        st.integers(0, 10**6),
        st.binary(min_size=1, max_size=4),
    ),
    min_size=1,
    max_size=4,
)


def mutate(data: bytes, edits: list[tuple[str, int, bytes]]) -> bytes:
    out = bytearray(data)
    for op, where, extra in edits:
        at = where % (len(out) + 1)
        if op == "flip" and out:
            out[at % len(out)] ^= extra[0] or 0xFF
        elif op == "drop":
            del out[at : at + len(extra)]
        else:
            out[at:at] = extra
    return bytes(out)


@settings(max_examples=250, deadline=None)
@given(st.dictionaries(_keys, _trees, max_size=4), _mutations, st.booleans())
def test_mutated_msgpack_raises_only_codec_error(
    tree: dict[str, Any], edits: list[tuple[str, int, bytes]], walk: bool
) -> None:
    packed = mutate(msgpack.packb({"v": 1, "d": tree}, use_bin_type=True), edits)
    payload = codec.MAGIC + brotli.compress(packed)
    with always_walk() if walk else contextlib.nullcontext():
        try:
            result = decode(payload)
        except CodecError:
            return
    assert isinstance(result, dict)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2048))
def test_the_walk_raises_only_codec_error_on_random_msgpack(data: bytes) -> None:
    with contextlib.suppress(CodecError):
        codec._walk(bytearray(data))

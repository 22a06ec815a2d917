"""The codec must round-trip every verdict exactly and turn every hostile byte string into
`CodecError` — nothing else, and without inflating a bomb."""

from __future__ import annotations

import contextlib
import datetime as dt
import pickle
from collections.abc import Callable
from dataclasses import asdict
from typing import Any, cast

import brotli
import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kombu import serialization
from kombu.exceptions import ContentDisallowed, DecodeError, EncodeError

from worker import codec
from worker.codec import CodecError, decode, decode_value, encode, encode_value
from worker.models import Finding, FindingKind, HostReport, Package, Status


def _report(findings: int = 50) -> dict[str, Any]:
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
                name=f"pkg-{i}",
                manager="pypi" if i % 3 else "conda",
                expected=f"1.{i}.0=py311h{i:07x}_0",
                actual=None if i % 5 == 0 else f"1.{i}.1=py311h{i:07x}_1",
                message=f"conda-lock.yml:{10 + i}: installed version differs — ünïcode ok",
            )
            for i in range(findings)
        ],
        packages=412,
        warnings=["conda-meta/odd.json: file name is not name-version-build"],
        checked_at=1722000000.125,
        duration_ms=41.5,
        lockstep_version="0.1.0",
    ).model_dump(mode="json")


def _snapshot(packages: int = 1000) -> dict[str, Any]:
    return {
        "host": "web-017",
        "packages": [
            asdict(
                Package(
                    name=f"pkg-{i}",
                    version=f"{i % 7}.{i % 13}.{i % 3}",
                    build=f"py311h{i:07x}_{i % 4}",
                    build_number=i % 4,
                    channel="https://conda.anaconda.org/conda-forge",
                    subdir="linux-64" if i % 2 else "noarch",
                    md5=f"{i:032x}",
                    sha256=f"{i * 7919:064x}",
                    url=f"https://conda.anaconda.org/conda-forge/linux-64/pkg-{i}-1.0-h_0.conda",
                )
            )
            for i in range(packages)
        ],
    }


# kombu is untyped: give its two entry points the signatures they have.
dumps = cast(Callable[..., tuple[str, str, bytes]], serialization.dumps)
loads = cast(Callable[..., Any], serialization.loads)


def _raw_payload(envelope: Any) -> bytes:
    """A payload built by hand, to feed the decoder what our encoder would refuse to make."""
    packed: bytes = msgpack.packb(envelope, use_bin_type=True)
    compressed: bytes = brotli.compress(packed)
    return codec.MAGIC + compressed


# ------------------------------------------------------------------------------ round trips


@pytest.mark.parametrize(
    "obj",
    [_report(), _report(0), _snapshot(), {}],
    ids=["report", "clean-report", "snapshot", "empty"],
)
def test_realistic_documents_round_trip_exactly(obj: dict[str, Any]) -> None:
    payload = encode(obj)
    assert payload[:1] == codec.MAGIC
    assert decode(payload) == obj


def test_report_decodes_back_into_the_model() -> None:
    report = HostReport.model_validate(decode(encode(_report())))
    assert report.status is Status.DRIFT
    assert len(report.findings) == 50
    assert report.findings[1].kind is FindingKind.EXTRA


def test_payload_is_much_smaller_than_msgpack() -> None:
    obj = _report()
    assert len(encode(obj)) < len(msgpack.packb(obj)) / 2


def test_non_dict_values_round_trip_through_encode_value() -> None:
    body = (["sha256:abc", "web-1"], {"deadline": 12.5}, {"callbacks": None, "chord": None})
    assert decode_value(encode_value(body)) == [
        list(part) if isinstance(part, tuple) else part for part in body
    ]
    assert decode_value(encode_value("just a string")) == "just a string"


def test_str_enums_are_sent_as_plain_strings() -> None:
    assert decode(encode({"status": Status.OK})) == {"status": "OK"}


def test_higher_quality_is_accepted_and_smaller() -> None:
    obj = _report()
    assert decode(encode(obj, quality=11)) == obj
    assert len(encode(obj, quality=11)) < len(encode(obj))
    with pytest.raises(CodecError, match="quality"):
        encode(obj, quality=12)


_keys = st.text(max_size=12)
_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=40)
    | st.binary(max_size=40)
)
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(_keys, inner, max_size=6),
    max_leaves=40,
)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(_keys, _values, max_size=8))
def test_any_plain_dict_round_trips(obj: dict[str, Any]) -> None:
    assert decode(encode(obj)) == obj


# ------------------------------------------------------------------------- refused on encode


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ({"when": dt.datetime(2024, 7, 1, tzinfo=dt.UTC)}, "datetime: send times as epoch"),
        ({"day": dt.date(2024, 7, 1)}, "date"),
        ({"k": {1: "int key"}}, "non-str key 1"),
        ({"k": {b"b": "bytes key"}}, "non-str key b'b'"),
        ({"s": {1, 2}}, r"value\['s'\] has unsupported type set"),
        ({"big": 2**64}, "does not fit"),
        ({"o": [object()]}, r"value\['o'\]\[0\] has unsupported type object"),
    ],
)
def test_encode_refuses_what_cannot_travel(obj: dict[str, Any], message: str) -> None:
    with pytest.raises(CodecError, match=message):
        encode(obj)


def test_encode_refuses_non_dicts_and_deep_nesting() -> None:
    with pytest.raises(CodecError, match="takes a dict"):
        encode([1, 2])  # type: ignore[arg-type]
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(100):
        node["x"] = {}
        node = node["x"]
    with pytest.raises(CodecError, match="nested deeper"):
        encode(deep)


# ------------------------------------------------------------------------- refused on decode


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"", "empty payload"),
        (b"\x00" + brotli.compress(b"x"), "not a lockstep payload"),
        (b'{"v": 1}', "not a lockstep payload"),
        (codec.MAGIC + b"garbage, not brotli", "corrupt payload"),
        (_raw_payload({"v": 2, "d": {}}), "unsupported schema version 2"),
        (_raw_payload({"v": True, "d": {}}), "unsupported schema version True"),
        (_raw_payload({"v": 1}), "envelope"),
        (_raw_payload({"v": 1, "d": {}, "extra": 1}), "envelope"),
        (_raw_payload([1, {}]), "envelope"),
        (_raw_payload({"v": 1, "d": [1]}), "holds a list, expected a dict"),
        (_raw_payload({"v": 1, "d": {b"k": 1}}), "non-str key"),
        (_raw_payload({"v": 1, "d": {"t": msgpack.Timestamp(1)}}), "unsupported type Timestamp"),
        (_raw_payload({"v": 1, "d": {"e": msgpack.ExtType(5, b"x")}}), "ext type 5"),
        (codec.MAGIC + brotli.compress(msgpack.packb({"v": 1, "d": {}}) + b"\x00"), "corrupt"),
        (codec.MAGIC + brotli.compress(b"\x91" * 3000 + b"\xc0"), "corrupt payload"),
    ],
)
def test_decode_refuses_bad_payloads(payload: bytes, message: str) -> None:
    with pytest.raises(CodecError, match=message):
        decode(payload)


def test_int_map_keys_are_refused() -> None:
    with pytest.raises(CodecError, match="map key"):
        decode(_raw_payload({"v": 1, "d": {1: 2}}))


def test_every_truncation_of_a_valid_payload_is_refused() -> None:
    payload = encode(_report(5))
    for end in range(len(payload)):
        with pytest.raises(CodecError):
            decode(payload[:end])


def test_trailing_bytes_are_refused() -> None:
    payload = encode(_report(5))
    for tail in (b"\x00", b"x" * 100, payload[1:]):
        with pytest.raises(CodecError):
            decode(payload + tail)


def test_every_single_byte_flip_is_refused_or_decodes_to_a_dict() -> None:
    payload = bytearray(encode(_report(3)))
    for i in range(len(payload)):
        mutated = bytearray(payload)
        mutated[i] ^= 0xFF
        try:
            result = decode(bytes(mutated))
        except CodecError:
            continue
        assert isinstance(result, dict)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=512))
def test_arbitrary_bytes_raise_only_codec_error(data: bytes) -> None:
    for candidate in (data, codec.MAGIC + data):
        with contextlib.suppress(CodecError):
            decode(candidate)


@settings(max_examples=300, deadline=None)
@given(_values)
def test_arbitrary_msgpack_in_a_valid_brotli_frame_raises_only_codec_error(value: Any) -> None:
    payload = codec.MAGIC + brotli.compress(msgpack.packb(value, use_bin_type=True))
    with contextlib.suppress(CodecError):
        decode(payload)


def test_decode_refuses_non_bytes() -> None:
    with pytest.raises(CodecError, match="must be bytes"):
        decode("text")  # type: ignore[arg-type]


def test_decompression_bomb_is_refused_at_the_cap() -> None:
    # 1 GiB of zeros compresses to ~1.6 kB; inflating it whole would take 1 GiB of memory.
    compressor = brotli.Compressor(quality=1)
    zeros = bytes(1 << 20)
    bomb = codec.MAGIC + b"".join(
        [compressor.process(zeros) for _ in range(1024)] + [compressor.finish()]
    )
    assert len(bomb) < 1 << 20
    with pytest.raises(CodecError, match="inflates beyond 1048576 bytes"):
        decode(bomb, max_size=1 << 20)
    with pytest.raises(CodecError, match="inflates beyond"):
        decode(bomb)


def test_payload_just_under_the_cap_decodes_and_just_over_is_refused() -> None:
    obj = {"blob": bytes(100_000)}
    payload = encode(obj)
    packed_size = len(msgpack.packb({"v": 1, "d": obj}, use_bin_type=True))
    assert decode(payload, max_size=packed_size) == obj
    with pytest.raises(CodecError, match="inflates beyond"):
        decode(payload, max_size=packed_size - 1)


def test_oversized_compressed_input_is_refused_before_decompressing() -> None:
    with pytest.raises(CodecError, match="exceeds the cap"):
        decode(codec.MAGIC + bytes(20_000), max_size=1_000)


# ----------------------------------------------------------------------------------- kombu


@pytest.fixture(autouse=True, scope="module")
def _registered() -> None:
    codec.register_kombu_serializer()


def test_kombu_round_trip_with_the_registered_name() -> None:
    body = (["sha256:abc"], {"host": "web-1"}, {"callbacks": None})
    content_type, content_encoding, payload = dumps(body, serializer="lockstep")
    assert (content_type, content_encoding) == ("application/x-lockstep", "binary")
    assert payload[:1] == codec.MAGIC
    decoded = loads(payload, content_type, content_encoding, accept=["application/x-lockstep"])
    assert decoded == [["sha256:abc"], {"host": "web-1"}, {"callbacks": None}]


def test_kombu_refuses_pickle_when_only_lockstep_is_accepted() -> None:
    evil = pickle.dumps({"not": "allowed"})
    with pytest.raises(ContentDisallowed):
        loads(evil, "application/x-python-serialize", "binary", accept=["application/x-lockstep"])


def test_kombu_surfaces_codec_errors_as_its_own_errors() -> None:
    with pytest.raises(DecodeError):
        loads(b"\xb1junk", "application/x-lockstep", "binary", accept=["application/x-lockstep"])
    with pytest.raises(EncodeError):
        dumps({"when": dt.datetime.now(dt.UTC)}, serializer="lockstep")

"""The wire format of lockstep: msgpack inside brotli, behind a one-byte tag and a schema version.

Verdicts and task bodies cross a broker that anyone with access to Redis can write to, so
decoding treats every payload as hostile: the compressed input is capped, brotli output is
pulled out through a bounded `Decompressor` (kombu's own `compression='brotli'` inflates
everything first — a decompression bomb), msgpack limits follow from the bounded buffer, and
the decoded tree is checked to hold only plain JSON-like types with string keys. Any failure
surfaces as `CodecError` and nothing else, so callers need one `except`.

No datetimes and no ext types: times travel as epoch floats or ISO strings, which every
consumer (JSON reports, other languages) reads without a custom hook. No pickle, ever.

Brotli quality was measured on this machine (2 cores, noisy: medians, numbers moved ~30 %
between runs) on a `HostReport.model_dump(mode="json")` with 50 findings (9.5 kB of msgpack)
and a snapshot of 1,000 `Package` dicts with random md5/sha256 (371 kB of msgpack):

    quality   report: compress  decompress  bytes    snapshot: compress  decompress  bytes
       1              0.05 ms     0.03 ms    2,659             1.9 ms      1.2 ms   93,282
       4              0.22 ms     0.03 ms    2,353             7.5 ms      1.1 ms   88,000
       5              0.18-0.34   0.02 ms    2,230            12.5 ms      1.3 ms   89,407
       6              0.19 ms     0.02 ms    2,215            18   ms      1.3 ms   89,167
      11             17-21  ms    0.07 ms    1,991           930   ms      1.5 ms   77,223

Quality 1 is chosen: it is 4-7x cheaper than 4-6 for 5 % (snapshot) to 19 % (verdict) more
bytes, and 300x cheaper than 11. Encoding sits on the producer's publish path, which the
design measured as the fleet bottleneck, and on every worker; a few hundred bytes per verdict
are nothing to Redis. Hashes dominate snapshots and do not compress at any quality. Callers
storing something once and reading it often (a content-addressed lock) may pass `quality=`.
Whole-codec cost at quality 1 (type walk + msgpack + brotli): a verdict ~0.1-0.2 ms to
encode and ~0.1-0.25 ms to decode; the snapshot ~6-9 ms each way (msgpack object building
and the type walk dominate; brotli is ~1-2 ms of it).

The byte cap alone does not bound memory: msgpack spends one byte on an empty map, Python
64 on the dict and 8 on the list slot that holds it, so 4 MB of msgpack (904 bytes of brotli)
once cost a worker 880 MiB. Measured with tracemalloc, the worst amplifications are an empty
map (72x), an empty list (64x), a one-entry map (64x), a two-character string (20x). So
decoding bounds the object count, not only the bytes:

- Every `msgpack.unpackb` gets explicit per-item limits, sized to real payloads and never
  above the buffer's length (msgpack presizes lists and dicts from the header's claim):
  maps of at most 1,024 entries (the widest real map, a lock record, has 15 keys), lists of
  at most 100,000 items, strings and bytes of at most 1 MiB (the longest real string, a
  package URL, is ~100 bytes).
- A payload above 256 KiB of msgpack (worst case ~18 MiB of objects below that) is first
  walked without building anything, counting objects (at most 500,000) and nesting (the
  tree's 64 levels plus the envelope). A real 5,000-package lock
  (`Lock.model_dump(mode="json")` of a conda-lock file) is 1.9 MB of msgpack (421 kB on the
  wire) and 115,000 objects; a 5,000-finding verdict 1.1 MB (89 kB) and 65,000 objects. The
  walk costs about 1.5x the unpack (~45 ms for that lock, which a worker decodes once per
  digest); task bodies and usual verdicts (50 findings: 10 kB) stay below the threshold and
  never pay it. The 904-byte bomb now fails at its first list header (4 M items). Peak memory
  of an accepted payload is thus bounded by ~36 MB of objects plus its strings.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable
from typing import Any, Final, cast

import brotli
import msgpack  # ships no stubs or py.typed

__all__ = [
    "CONTENT_ENCODING",
    "CONTENT_TYPE",
    "DEFAULT_MAX",
    "MAGIC",
    "QUALITY",
    "SCHEMA_VERSION",
    "SERIALIZER_NAME",
    "CodecError",
    "decode",
    "decode_value",
    "encode",
    "encode_value",
    "register_kombu_serializer",
]

#: Format tag in front of every payload; a future format (e.g. zstd) gets another byte, so
#: old readers fail with a clear "unknown format" instead of a brotli error.
MAGIC: Final = b"\xb1"
#: Version of the envelope and of the shape of what is inside; bump on incompatible change.
SCHEMA_VERSION: Final = 1
#: Default cap on the decoded msgpack size. A 50-finding verdict is ~10 kB and a 1,000-package
#: snapshot ~370 kB, a 10,000-package lock ~4 MB. Inflating a hostile message costs at most
#: the cap plus brotli's window (~4 MiB); the Python objects built from it are bounded by
#: count, not by this cap (see the module docstring).
DEFAULT_MAX: Final = 16 * 1024 * 1024
#: See the module docstring for the measurements behind this choice.
QUALITY: Final = 1

SERIALIZER_NAME: Final = "lockstep"
CONTENT_TYPE: Final = "application/x-lockstep"
CONTENT_ENCODING: Final = "binary"

# Compressed input is fed to brotli in slices so a huge input is never copied whole.
_INPUT_CHUNK = 64 * 1024
_OUTPUT_STEP = 256 * 1024
# Brotli never expands data by more than a few bytes per 16 MiB meta-block, so a compressed
# payload much larger than the output cap can only be garbage or an attack.
_COMPRESSION_SLACK = 4096
# Deep nesting is refused both ways: a realistic verdict is 3-4 levels deep, and msgpack's
# C unpacker has its own stack limit which would otherwise make encode succeed and decode fail.
_MAX_DEPTH = 64
# Limits of the decoder; the module docstring gives the real payloads they were sized to.
_MAX_MAP_LEN = 1024
_MAX_ARRAY_LEN = 100_000
_MAX_STR_LEN = 1024 * 1024
_MAX_BIN_LEN = 1024 * 1024
_MAX_OBJECTS = 500_000
_WALK_ABOVE = 256 * 1024

_SCALARS: Final = (str, int, float, bytes, bool, type(None))
_SCALAR_TYPES: Final = frozenset(_SCALARS)


class CodecError(ValueError):
    """A payload could not be encoded or decoded; the message says why."""


def encode(obj: dict[str, Any], *, quality: int = QUALITY) -> bytes:
    """Encode a dict (a verdict, a lock, a snapshot) for the wire."""
    if not isinstance(obj, dict):
        raise CodecError(f"encode() takes a dict, got {type(obj).__name__}")
    return encode_value(obj, quality=quality)


def decode(data: bytes, *, max_size: int = DEFAULT_MAX) -> dict[str, Any]:
    """Decode a payload made by `encode`, refusing anything but a dict at the top."""
    value = decode_value(data, max_size=max_size)
    if not isinstance(value, dict):
        raise CodecError(f"payload holds a {type(value).__name__}, expected a dict")
    return value


def encode_value(value: Any, *, quality: int = QUALITY) -> bytes:
    """Encode any msgpack-able value; Celery message bodies are `(args, kwargs, embed)` tuples."""
    _check_tree(value, encoding=True)
    try:
        packed = msgpack.packb(
            {"v": SCHEMA_VERSION, "d": value},
            use_bin_type=True,
            datetime=False,
            default=_refuse_type,
        )
    except CodecError:
        raise
    except (TypeError, ValueError, OverflowError) as exc:
        raise CodecError(f"cannot encode value: {exc}") from exc
    if not 0 <= quality <= 11:
        raise CodecError(f"brotli quality must be 0..11, got {quality}")
    compressed: bytes = brotli.compress(packed, quality=quality)
    return MAGIC + compressed


def decode_value(data: bytes | bytearray | memoryview, *, max_size: int = DEFAULT_MAX) -> Any:
    """Decode any payload made by `encode_value`, within `max_size` bytes of msgpack."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise CodecError(f"payload must be bytes, got {type(data).__name__}")
    if max_size < 1:
        raise CodecError(f"max_size must be positive, got {max_size}")
    try:
        view = memoryview(data).cast("B")
    except TypeError as exc:  # a non-contiguous memoryview
        raise CodecError(f"payload is not a contiguous byte buffer: {exc}") from exc
    if len(view) == 0:
        raise CodecError("empty payload")
    if view[0] != MAGIC[0]:
        raise CodecError(
            f"not a lockstep payload (format tag 0x{view[0]:02x}, expected 0x{MAGIC[0]:02x})"
        )
    if len(view) - 1 > max_size + _COMPRESSION_SLACK:
        raise CodecError(f"compressed payload of {len(view) - 1} bytes exceeds the cap")
    packed = _inflate(view[1:], max_size)
    envelope = _unpack(packed)
    if not isinstance(envelope, dict) or set(envelope) != {"v", "d"}:
        raise CodecError("payload lacks the lockstep envelope {'v': ..., 'd': ...}")
    version = envelope["v"]
    if type(version) is not int or version != SCHEMA_VERSION:
        raise CodecError(f"unsupported schema version {version!r} (this reader: {SCHEMA_VERSION})")
    value = envelope["d"]
    _check_tree(value, encoding=False)
    return value


def register_kombu_serializer(*, task_bodies: bool = False) -> None:
    """Make `lockstep` usable as a Celery `task_serializer` / `result_serializer`.

    Idempotent. Registered as `binary` so kombu hands the body over as the raw bytes (it
    would otherwise try to decode them as text); the kombu Redis transport delivers bytes.
    A worker passes `task_bodies=True`: decoding is then bounded to a task body's size and
    checks its `[args, kwargs, embed]` shape, so a bad body becomes kombu's `DecodeError`
    (logged and acknowledged by Celery) instead of an "Unrecoverable error" deep in Celery.
    """
    from kombu import serialization

    decode: Callable[[bytes], Any] = decode_value
    if task_bodies:
        from worker.task_body import decode_body

        decode = decode_body
    register = cast(Callable[..., None], serialization.register)
    register(
        SERIALIZER_NAME,
        encode_value,
        decode,
        content_type=CONTENT_TYPE,
        content_encoding=CONTENT_ENCODING,
    )


def _inflate(compressed: memoryview, max_size: int) -> bytearray:
    """Brotli-decompress, stopping as soon as the output would pass `max_size` bytes."""
    decompressor = brotli.Decompressor()
    out = bytearray()
    pos = 0
    try:
        while not decompressor.is_finished():
            chunk: memoryview | bytes = b""
            if decompressor.can_accept_more_data() and pos < len(compressed):
                chunk = compressed[pos : pos + _INPUT_CHUNK]
                pos += len(chunk)
            # Output is pulled in small steps: one call with the whole remaining budget would
            # let brotli build a buffer of that size and then copy it. The limit is soft
            # (brotli fills whole internal blocks, ~32 KiB), hence the check right after.
            step = min(_OUTPUT_STEP, max_size - len(out) + 1)
            piece = decompressor.process(chunk, output_buffer_limit=step)
            out += piece
            if len(out) > max_size:
                raise CodecError(f"payload inflates beyond {max_size} bytes")
            if not chunk and not piece and not decompressor.is_finished():
                raise CodecError("truncated payload: brotli stream ends early")
    except brotli.error as exc:
        raise CodecError(f"corrupt payload: {exc}") from exc
    if pos < len(compressed):
        raise CodecError("trailing bytes after the brotli stream")
    return out


def _unpack(packed: bytearray) -> Any:
    size = len(packed)
    if size > _WALK_ABOVE:
        _walk(packed)
    try:
        return msgpack.unpackb(
            packed,
            raw=False,
            strict_map_key=True,
            use_list=True,
            ext_hook=_refuse_ext,
            max_str_len=min(_MAX_STR_LEN, size),
            max_bin_len=min(_MAX_BIN_LEN, size),
            max_array_len=min(_MAX_ARRAY_LEN, size),
            max_map_len=min(_MAX_MAP_LEN, size // 2),
            max_ext_len=min(_MAX_BIN_LEN, size),  # refused by ext_hook, Timestamp by the walk
        )
    except CodecError:
        raise
    except Exception as exc:  # msgpack raises many unrelated types on garbage
        detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        raise CodecError(f"corrupt payload: {detail}") from exc


# Bytes after the type byte for fixed-size scalars, and width of the length field of
# str/bin/array/map types (msgpack spec); ext types (0xc7-0xc9, 0xd4-0xd8) are refused.
_FIXED = {0xCA: 4, 0xCB: 8, 0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8, 0xD0: 1, 0xD1: 2, 0xD2: 4, 0xD3: 8}
_SIZED = {0xD9: 1, 0xDA: 2, 0xDB: 4, 0xC4: 1, 0xC5: 2, 0xC6: 4}
_BIN_TYPES = frozenset({0xC4, 0xC5, 0xC6})
_ARRAYS = {0xDC: 2, 0xDD: 4}
_MAPS = {0xDE: 2, 0xDF: 4}


def _walk(packed: bytearray) -> int:
    """Count the objects of one msgpack value without building any; CodecError past a limit.

    Runs before `unpackb` on large payloads because msgpack cannot bound the number of
    objects it builds, only the length of each. Returns the count (for tests).
    """
    data = bytes(packed)
    end = len(data)
    pos = 0
    count = 0
    pending = [1]  # items still to read at each open level
    while pending:
        if pending[-1] == 0:
            pending.pop()
            continue
        pending[-1] -= 1
        if pos >= end:
            raise CodecError("corrupt payload: msgpack data ends inside a value")
        tag = data[pos]
        pos += 1
        count += 1
        items = 0
        if tag <= 0x7F or tag >= 0xE0 or 0xC0 <= tag <= 0xC3:
            if tag == 0xC1:
                raise CodecError("corrupt payload: msgpack type byte 0xc1 is never used")
            continue
        if 0xA0 <= tag <= 0xBF:
            pos += tag & 0x1F
        elif tag <= 0x8F:
            items = (tag & 0x0F) * 2
        elif tag <= 0x9F:
            items = tag & 0x0F
        elif tag in _FIXED:
            pos += _FIXED[tag]
            continue
        elif tag in _SIZED:
            width = _SIZED[tag]
            length = int.from_bytes(data[pos : pos + width], "big")
            limit = _MAX_BIN_LEN if tag in _BIN_TYPES else _MAX_STR_LEN
            if length > limit:
                raise CodecError(f"corrupt payload: a string of {length} bytes exceeds {limit}")
            pos += width + length
        elif tag in _ARRAYS:
            width = _ARRAYS[tag]
            items = int.from_bytes(data[pos : pos + width], "big")
            pos += width
            if items > _MAX_ARRAY_LEN:
                raise CodecError(
                    f"corrupt payload: a list of {items} items exceeds {_MAX_ARRAY_LEN}"
                )
        elif tag in _MAPS:
            width = _MAPS[tag]
            entries = int.from_bytes(data[pos : pos + width], "big")
            pos += width
            if entries > _MAX_MAP_LEN:
                raise CodecError(
                    f"corrupt payload: a map of {entries} entries exceeds {_MAX_MAP_LEN}"
                )
            items = entries * 2
        else:
            raise CodecError(f"msgpack ext type byte 0x{tag:02x} is not allowed")
        if items:
            if count + items > _MAX_OBJECTS:
                raise CodecError(f"payload holds more than {_MAX_OBJECTS} objects")
            if len(pending) > _MAX_DEPTH + 1:
                raise CodecError(f"payload is nested deeper than {_MAX_DEPTH} levels")
            pending.append(items)
    if pos != end:
        raise CodecError("corrupt payload: bytes left after the msgpack value")
    return count


def _refuse_ext(code: int, data: bytes) -> Any:
    raise CodecError(f"msgpack ext type {code} is not allowed")


def _refuse_type(obj: object) -> Any:
    if isinstance(obj, int):  # msgpack hands over ints that do not fit in 64 bits
        raise CodecError(f"integer {obj} does not fit in msgpack's 64 bits")
    raise CodecError(_type_message(obj, "a value"))


def _type_message(obj: object, where: str) -> str:
    if isinstance(obj, _dt.datetime | _dt.date | _dt.time | _dt.timedelta):
        return (
            f"{where} is a {type(obj).__name__}: send times as epoch seconds or ISO strings, "
            "the codec carries no datetime objects"
        )
    return f"{where} has unsupported type {type(obj).__name__}"


def _check_tree(value: Any, *, encoding: bool) -> None:
    """Allow only dicts with str keys, lists (tuples when encoding), and plain scalars.

    A fast walk decides; only when it fails does a second walk name the offending item, so
    the common case pays for no path bookkeeping. Both are iterative, so deep nesting in a
    hostile payload cannot hit Python's recursion limit.
    """
    if not _tree_is_plain(value, encoding=encoding):
        _raise_for_tree(value, encoding=encoding)


def _tree_is_plain(value: Any, *, encoding: bool) -> bool:
    # Written for speed (a 1,000-package snapshot has ~11k nodes): exact type checks, and
    # only containers and unusual values are pushed on the stack.
    scalars = _SCALAR_TYPES
    stack: list[tuple[Any, int]] = [(value, 0)]
    pop, push = stack.pop, stack.append
    while stack:
        item, depth = pop()
        kind = type(item)
        if kind is dict:
            if depth >= _MAX_DEPTH:
                return False
            for key, child in item.items():
                if type(key) is not str:
                    return False
                if type(child) not in scalars:
                    push((child, depth + 1))
        elif kind is list or (encoding and kind is tuple):
            if depth >= _MAX_DEPTH:
                return False
            for child in item:
                if type(child) not in scalars:
                    push((child, depth + 1))
        elif kind in scalars:
            continue  # only the root can get here: scalar children are never pushed
        elif not (encoding and isinstance(item, _SCALARS)):
            return False  # str/int subclasses such as str Enums may be sent as their base type
    return True


def _raise_for_tree(value: Any, *, encoding: bool) -> None:
    stack: list[tuple[Any, int, _Trail]] = [(value, 0, None)]
    while stack:
        item, depth, trail = stack.pop()
        if isinstance(item, _SCALARS):
            continue
        if depth >= _MAX_DEPTH:
            raise CodecError(f"{_path(trail)} is nested deeper than {_MAX_DEPTH} levels")
        if isinstance(item, dict):
            for key, sub in item.items():
                if not isinstance(key, str):
                    raise CodecError(f"{_path(trail)} has a non-str key {key!r}")
                stack.append((sub, depth + 1, (trail, key)))
        elif isinstance(item, list) or (encoding and isinstance(item, tuple)):
            stack.extend((sub, depth + 1, (trail, i)) for i, sub in enumerate(item))
        else:
            raise CodecError(_type_message(item, _path(trail)))
    raise CodecError("value holds something the codec cannot carry")


# A linked list of keys from the root, built only as cheap tuples while walking.
_Trail = tuple["_Trail", str | int] | None


def _path(trail: _Trail) -> str:
    keys: list[str | int] = []
    while trail is not None:
        trail, key = trail
        keys.append(key)
    return "value" + "".join(f"[{key!r}]" for key in reversed(keys))

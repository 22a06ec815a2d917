"""conda-lock's unified `conda-lock.yml` (version 1).

Real conda-lock files for big environments run to tens of thousands of lines, and even
libyaml's composer needs seconds for that on a small host. conda-lock always writes the
`package:` list in one plain block layout, so that list is read by a line scanner; anything
the scanner is not sure about (anchors, flow style, multi-line scalars, odd indentation) sends
the whole file through the YAML composer instead, which is the authority on syntax errors.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from yaml.nodes import Node, ScalarNode

from producer.locks import records, signatures, yaml_nodes
from producer.locks.interface import LockError, PlatformMissing
from producer.locks.naming import hex_digest, pypi_name
from worker.channels import canonical_channel, split_archive_name, split_package_url
from worker.models import Lock, LockedPackage, LockKind

FORMAT = "conda-lock"

# Characters YAML does not allow anywhere; the composer reports them with their line
# (NEL and the Unicode line separators too: they would make lines count differently.)
_NON_PRINTABLE = re.compile(
    "[^\t\n\r\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"
)
_NULLS = frozenset({"~", "null", "Null", "NULL"})


# One value of an entry: (its text or None, the line of its key, whether it is a single value
# rather than a nested block). A plain tuple: a 5,000-package lock makes tens of thousands.
_Field = tuple[str | None, int, bool]
# The entry keys `_build` reads; every other line is checked but nothing of it is kept.
_KEPT = frozenset({"name", "version", "manager", "platform", "url", "hash"})


@dataclass(slots=True)
class _Entry:
    line: int
    fields: dict[str, _Field] = field(default_factory=dict)
    hashes: dict[str, _Field] = field(default_factory=dict)


class _Unsupported(Exception):
    """The fast scanner met YAML it does not handle; the composer must read the file."""


class CondaLockLoader:
    format = FORMAT

    def sniff(self, path: Path, text: str) -> bool:
        return signatures.conda_lock(signatures.head(text))

    def load(self, path: Path, text: str, *, platform: str, environment: str | None) -> Lock:
        text = text.replace("\r\n", "\n")
        fast = _load_fast(path, text)
        if fast is not None:
            root, entries = fast
        else:
            root = _root(path, text)
            entries = _entries_from_nodes(path, root)
        return _build(path, root, entries, platform)


def _load_fast(path: Path, text: str) -> tuple[dict[str, Node], list[_Entry]] | None:
    """Scan the package list; compose the rest of the file with a `package: ~` placeholder.

    The placeholder must come back as the root's null `package` value on its own line: if it
    does not, something before it (an unclosed quote or bracket) swallowed the list, and only
    the composer can say what the file means.
    """
    if not _printable(text):
        return None
    lines = text.split("\n")
    fast = _scan_fast(text, lines)
    if fast is None:
        return None
    entries, start, end = fast
    rest = "\n".join([*lines[:start], "package: ~", *[""] * (end - start - 1), *lines[end:]])
    try:
        root = _root(path, rest)
    except LockError:
        return None
    placeholder = root.get("package")
    if placeholder is None or not yaml_nodes.is_null(placeholder):
        return None
    if yaml_nodes.line_of(placeholder) != start + 1:
        return None
    return root, entries


def _printable(text: str) -> bool:
    """No character YAML rejects, and no CR: the scanner's line numbers must be the composer's.

    Lock files are nearly always ASCII, where deleting the allowed bytes in C and looking at
    what is left costs a fraction of a regex search.
    """
    if text.isascii():
        return not text.encode("ascii").translate(None, _PRINTABLE_ASCII)
    return _NON_PRINTABLE.search(text) is None and "\r" not in text


def _root(path: Path, text: str) -> dict[str, Node]:
    node = yaml_nodes.compose(path, text)
    if node is None:
        raise LockError(path, None, "file is empty")
    root = yaml_nodes.mapping(path, node, "a conda-lock file")
    version = root.get("version")
    if version is None:
        raise LockError(path, 1, "not a conda-lock file: no 'version' key")
    value = yaml_nodes.scalar(path, version, "'version'")
    if value != "1":
        raise LockError(
            path,
            yaml_nodes.line_of(version),
            f"unsupported conda-lock version {value!r}: only version 1 (unified) is read",
        )
    return root


# --- the fast path ---------------------------------------------------------------------------


def _scan_fast(text: str, lines: list[str]) -> tuple[list[_Entry], int, int] | None:
    """Entries of the `package:` block and its line range, or None to use the composer."""
    found = _package_key_offsets(text)
    if len(found) != 1:
        return None
    start = text.count("\n", 0, found[0])
    if start + 1 >= len(lines):
        return None
    try:
        entries, end = _scan_section(lines, start + 1)
    except _Unsupported:
        return None
    return entries, start, end


def _package_key_offsets(text: str) -> list[int]:
    """Offsets of the column-0 lines that hold `package:` alone (or with blanks, a comment)."""
    candidates = [0] if text.startswith(_PACKAGE) else []
    at = text.find("\n" + _PACKAGE)
    while at >= 0:
        candidates.append(at + 1)
        at = text.find("\n" + _PACKAGE, at + 1)
    offsets: list[int] = []
    for offset in candidates:
        eol = text.find("\n", offset)
        after = text[offset + len(_PACKAGE) : eol if eol >= 0 else len(text)].lstrip(" \t")
        if not after or after[0] == "#":
            offsets.append(offset)
    return offsets


# A section line is `[spaces][- ]key:[ value]` (key: `[A-Za-z0-9_][A-Za-z0-9_.-]*`, value after
# at least one space) or anything else: a blank, a comment or a `- value` list item.
_PACKAGE = "package:"
_PLAIN_START = frozenset("&*!|>%@`{}[],#?:-'\"")
_NOT_PLAIN = _PLAIN_START | {" "}  # nor a second space before the value
_KEY_START_EXCLUDED = frozenset(".-")
# Printable ASCII plus tab and LF: what may appear in a file the scanner reads.
_PRINTABLE_ASCII = bytes([9, 10, *range(0x20, 0x7F)])

_OPEN = 0  # `key:` with nothing after it: a nested block (or null) follows
_SCALAR = 1  # `key: value`
_EMPTY = 2  # `key: {}` / `key: []`
_LIST_ITEM = 3  # `- value` without a key (inside a nested block)
_SKIP = 4  # a blank or comment line


def _is_key(key: str, known: set[str]) -> bool:
    """Whether `key` is a plain mapping key the scanner reads; remembered in `known`."""
    if not key or key[0] in _KEY_START_EXCLUDED or not key.isascii():
        return False
    if not key.replace(".", "a").replace("-", "a").replace("_", "a").isalnum():
        return False
    known.add(key)
    return True


def _value(rest: str) -> tuple[int, str | None]:
    if not rest:
        return _OPEN, None
    first = rest[0]
    if first == "'" and rest[-1] == "'" and rest.count("'") == 2:
        return _SCALAR, rest[1:-1]
    if (
        first not in _PLAIN_START
        and " #" not in rest
        and ": " not in rest
        and "\t" not in rest
        and rest[-1] not in ": "
    ):
        return _SCALAR, None if rest in _NULLS else rest
    rest = rest.strip()
    if rest in ("{}", "[]"):
        return _EMPTY, None
    if not rest or rest[0] == "#":
        return _OPEN, None
    return _SCALAR, _plain_scalar(rest)


def _other_line(raw: str) -> tuple[int, int, str | None]:
    """(indent, kind, value) of a line that is not `[- ]key: ...`: blank, comment or `- value`."""
    body = raw.lstrip(" ")
    if body[:1] == "#":
        return 0, _SKIP, None
    if "\t" in body:
        raise _Unsupported
    if not body.strip():
        return 0, _SKIP, None
    body = body.rstrip()
    if not body.startswith("- ") or body[2:3] == " ":
        raise _Unsupported
    return len(raw) - len(raw.lstrip(" ")), _LIST_ITEM, _plain_scalar(body[2:])


def _scan_section(lines: list[str], first: int) -> tuple[list[_Entry], int]:
    """Walk the lines from index `first`; return the entries and the index the section ends at.

    A 5,000-package lock has over 50,000 lines here, so each is split with index arithmetic
    and `find` rather than a regex, and only the values `_build` reads become strings.
    """
    entries: list[_Entry] = []
    item_indent = -1
    key_indent = -1
    current = _Entry(0)
    open_key: str | None = None  # the key whose nested block the next deeper lines belong to
    nested_indent = -1
    nested_items = False
    keys: set[str] = set()
    end = len(lines)
    for index in range(first, end):
        raw = lines[index]
        body = raw.lstrip(" ")
        indent = len(raw) - len(body)
        is_item = body.startswith("- ")
        start = 2 if is_item else 0
        colon = body.find(":", start)
        key = body[start:colon] if colon > start else ""
        size = len(body)
        value: str | None
        if (
            key
            and (colon + 1 == size or body[colon + 1] == " ")
            and (key in keys or _is_key(key, keys))
        ):
            at = colon + 2  # where the value starts, after the one space YAML needs
            if at >= size:
                kind, value = _OPEN, None
            elif (
                body[at] not in _NOT_PLAIN
                and body[-1] not in ": "
                and "\t" not in body  # the key and `: ` hold neither a tab
                and " #" not in body  # nor a ` #` (the value does not start with `#`)
                and body.find(": ", at) < 0
            ):
                kind, value = _SCALAR, body[at:]
                if value in _NULLS:
                    value = None
            else:
                kind, value = _value(body[at:].lstrip(" "))
        else:
            indent, kind, value = _other_line(raw)
            if kind == _SKIP:
                continue
            is_item = True
        if item_indent < 0:
            if not is_item or kind == _LIST_ITEM:
                raise _Unsupported
            item_indent, key_indent = indent, indent + 2
        if indent == key_indent and not is_item:
            pass
        elif indent == item_indent and is_item:
            if kind == _LIST_ITEM:
                raise _Unsupported
            current = _Entry(index + 1)
            entries.append(current)
        elif indent > key_indent and open_key is not None:
            # Nested blocks are flat: one indent, all `key: value` or all `- value` lines.
            if nested_indent < 0:
                nested_indent, nested_items = indent, is_item
                opened = current.fields.get(open_key)
                if opened is not None:
                    current.fields[open_key] = (None, opened[1], False)
            if indent != nested_indent or is_item != nested_items or kind == _OPEN:
                raise _Unsupported
            if is_item != (kind == _LIST_ITEM):
                raise _Unsupported
            if open_key == "hash":
                if kind != _SCALAR:
                    raise _Unsupported
                current.hashes[key] = (value, index + 1, True)
            continue
        elif indent == 0 and not is_item and kind != _LIST_ITEM:
            end = index
            break
        else:
            raise _Unsupported
        if kind == _LIST_ITEM:
            raise _Unsupported
        if key in _KEPT:
            current.fields[key] = (value, index + 1, kind != _EMPTY)
            if key == "hash":
                current.hashes = {}  # a repeated key replaces the earlier value, as in YAML
        open_key = key if kind == _OPEN else None
        nested_indent = -1
    if not entries:
        raise _Unsupported
    return entries, end


def _plain_scalar(raw: str) -> str | None:
    """A one-line YAML scalar as written (quotes removed); None for null."""
    raw = raw.strip()
    if not raw or raw[0] == "#":
        return None
    first = raw[0]
    if first == "'":
        quote = raw.find("'", 1)
        while quote >= 0 and raw.startswith("''", quote):
            quote = raw.find("'", quote + 2)
        if quote < 0:
            raise _Unsupported
        _only_comment_after(raw[quote + 1 :])
        return raw[1:quote].replace("''", "'")
    if first == '"':
        quote = raw.find('"', 1)
        if quote < 0 or "\\" in raw[:quote]:
            raise _Unsupported
        _only_comment_after(raw[quote + 1 :])
        return raw[1:quote]
    if first in "&*!|>%@`{}[],":
        raise _Unsupported
    if raw in ("-", "?", ":") or raw.startswith(("- ", "? ", ": ")):
        raise _Unsupported
    cut = raw.find(" #")
    if cut >= 0:
        raw = raw[:cut].rstrip()
    if ": " in raw or raw.endswith(":") or "\t" in raw:
        raise _Unsupported
    return None if raw in _NULLS else raw


def _only_comment_after(rest: str) -> None:
    if rest and not (rest[0] in " \t" and rest.strip()[:1] in ("", "#")):
        raise _Unsupported


# --- the composer path -----------------------------------------------------------------------


def _entries_from_nodes(path: Path, root: dict[str, Node]) -> list[_Entry]:
    node = root.get("package")
    if node is None:
        raise LockError(path, 1, "not a conda-lock file: no 'package' list")
    if yaml_nodes.is_null(node):
        return []
    entries: list[_Entry] = []
    for item in yaml_nodes.sequence(path, node, "'package'"):
        entry = _Entry(yaml_nodes.line_of(item))
        lines = yaml_nodes.key_lines(item)
        for key, value in yaml_nodes.mapping(path, item, "a package entry").items():
            if key not in _KEPT:
                continue
            entry.fields[key] = _node_field(value, lines[key])
            # A scalar `hash` is left to `_build`, which reports it in entry order, exactly
            # as it does for the line scanner's entries.
            if key == "hash" and not isinstance(value, ScalarNode):
                hash_lines = yaml_nodes.key_lines(value)
                for hkey, hvalue in yaml_nodes.mapping(path, value, "'hash'").items():
                    entry.hashes[hkey] = _node_field(hvalue, hash_lines[hkey])
        entries.append(entry)
    return entries


def _node_field(node: Node, line: int) -> _Field:
    """A value with the line of its key, as the line scanner records it."""
    if isinstance(node, ScalarNode):
        value = None if yaml_nodes.is_null(node) else str(node.value)
        return value, line, True
    return None, line, False


# --- shared: entries to a Lock ---------------------------------------------------------------


def _required(path: Path, entry: _Entry, key: str) -> str:
    item = entry.fields.get(key)
    if item is None:
        raise LockError(path, entry.line, f"package entry has no {key!r}")
    value, line, is_scalar = item
    if not is_scalar:
        raise LockError(path, line, f"{key!r} must be a single value")
    if value is None or not value.strip():
        raise LockError(path, line, f"package entry has an empty {key!r}")
    return value.strip()


def _digest(path: Path, entry: _Entry, key: str, length: int) -> str | None:
    item = entry.hashes.get(key)
    if item is None or item[0] is None:
        return None
    value, line, _ = item
    digest = hex_digest(value, length)
    if digest is None:
        raise LockError(path, line, f"{key} must be {length} hex digits, got {value!r}")
    return digest


def _build(path: Path, root: dict[str, Node], entries: list[_Entry], platform: str) -> Lock:
    packages: list[LockedPackage] = []
    seen: dict[tuple[str, str, str], tuple[str, int]] = {}
    notes: list[str] = []
    platforms: set[str] = set(_metadata_list(path, root, "platforms"))
    for entry in entries:
        hash_field = entry.fields.get("hash")
        if hash_field is not None and hash_field[2] and hash_field[0] is not None:
            raise LockError(path, hash_field[1], "'hash' must be a mapping")
        name = _required(path, entry, "name")
        version = _required(path, entry, "version")
        manager = _required(path, entry, "manager")
        entry_platform = _required(path, entry, "platform")
        url = _required(path, entry, "url")
        md5 = _digest(path, entry, "md5", 32)
        sha256 = _digest(path, entry, "sha256", 64)
        if manager not in ("conda", "pip"):
            line = entry.fields["manager"][1]
            raise LockError(path, line, f"unknown manager {manager!r} (expected conda or pip)")
        platforms.add(entry_platform)
        key = (manager, name, entry_platform)
        if key in seen:
            first_url, first_line = seen[key]
            if first_url != url and entry_platform == platform:
                notes.append(
                    f"{path}:{entry.line}: {name} is locked again with a different url; "
                    f"keeping the entry at line {first_line}"
                )
            continue
        seen[key] = (url, entry.line)
        if manager == "pip":
            if entry_platform == platform:
                packages.append(
                    records.locked_package(
                        name=pypi_name(name),
                        manager="pypi",
                        version=version,
                        sha256=sha256,
                        url=url,
                        line=entry.line,
                    )
                )
            continue
        channel, subdir, filename = split_package_url(url)
        parts = split_archive_name(filename)
        if parts is None or not filename.endswith((".conda", ".tar.bz2")):
            line = entry.fields["url"][1]
            raise LockError(path, line, f"cannot derive the build from url file name {filename!r}")
        if entry_platform == platform:
            packages.append(
                records.locked_package(
                    name=name,
                    version=version,
                    build=parts[2],
                    channel=channel,
                    subdir=subdir,
                    md5=md5,
                    sha256=sha256,
                    url=url,
                    line=entry.line,
                )
            )
    if not packages:
        have = ", ".join(sorted(platforms)) or "none"
        raise PlatformMissing(
            path, None, f"no packages for platform {platform}; the lock has: {have}"
        )
    channels = [canonical_channel(c) for c in _metadata_list(path, root, "channels")]
    return records.lock(
        source=str(path),
        format=FORMAT,
        kind=LockKind.FULL,
        platform=platform,
        channels=[c for c in channels if c],
        packages=packages,
        notes=notes,
    )


def _metadata_list(path: Path, root: dict[str, Node], key: str) -> list[str]:
    """`metadata.platforms` / `metadata.channels` (channels are `{url: ...}` or plain text)."""
    metadata = root.get("metadata")
    if metadata is None or yaml_nodes.is_null(metadata):
        return []
    node = yaml_nodes.mapping(path, metadata, "'metadata'").get(key)
    if node is None or yaml_nodes.is_null(node):
        return []
    values: list[str] = []
    for item in yaml_nodes.sequence(path, node, f"'metadata.{key}'"):
        if isinstance(item, ScalarNode):
            value = yaml_nodes.scalar(path, item, f"a {key} entry")
        else:
            url = yaml_nodes.mapping(path, item, f"a {key} entry").get("url")
            if url is None:
                raise LockError(path, yaml_nodes.line_of(item), f"a {key} entry has no 'url'")
            value = yaml_nodes.scalar(path, url, "'url'")
        if value:
            values.append(value.strip())
    return values

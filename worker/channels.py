"""Channel and package-URL normalization shared by snapshot sources and lock loaders.

Writers disagree on how a channel is spelled: a conda-meta record may hold
`https://conda.anaconda.org/conda-forge/`, `.../conda-forge/linux-64` or just `conda-forge`;
a lock holds full package URLs. Comparing channels is only meaningful after every spelling
is reduced to one canonical base URL, and conda's own display name is derived from that.
"""

from __future__ import annotations

import re
from functools import lru_cache
from urllib.parse import urlsplit

CHANNEL_ALIAS = "https://conda.anaconda.org"
# conda's `defaults` multichannel members live on repo.anaconda.com, not on the alias.
DEFAULTS_HOST = "https://repo.anaconda.com"
DEFAULT_CHANNEL_NAMES = frozenset({"pkgs/main", "pkgs/r", "pkgs/msys2", "pkgs/free", "pkgs/pro"})
PYPI = "pypi"

KNOWN_SUBDIRS = frozenset(
    {
        "noarch",
        "linux-32",
        "linux-64",
        "linux-aarch64",
        "linux-armv6l",
        "linux-armv7l",
        "linux-ppc64",
        "linux-ppc64le",
        "linux-riscv64",
        "linux-s390x",
        "osx-64",
        "osx-arm64",
        "win-32",
        "win-64",
        "win-arm64",
        "emscripten-wasm32",
        "wasi-wasm32",
        "zos-z",
    }
)

_ARCHIVE_SUFFIXES = (".conda", ".tar.bz2")
_TOKEN_RE = re.compile(r"/t/[^/?#]+")
_SCHEME_RE = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*:/*)")
# Query parameters whose value is a credential (password=, sentinel_password=, token=, ...).
_SECRET_PARAM_RE = re.compile(r"(?i)([?&;])([^=&;#]*(?:pass|pwd|secret|token)[^=&;#]*)=[^&;#]*")


@lru_cache(maxsize=1024)
def canonical_channel(channel: str) -> str:
    """Reduce any spelling of a channel to its base URL without subdir or trailing slash."""
    value = channel.strip().rstrip("/")
    if not value:
        return ""
    if value == PYPI:
        return PYPI
    if "://" not in value:
        if value in DEFAULT_CHANNEL_NAMES:
            return f"{DEFAULTS_HOST}/{value}"
        if value == "defaults":
            return f"{DEFAULTS_HOST}/pkgs/main"
        if value.startswith("/"):
            value = "file://" + value
        else:
            return f"{CHANNEL_ALIAS}/{value}"
    if "@" in value or "/t/" in value:
        value = mask_url(value, hide=True)  # credentials are not part of a channel's identity
    head, _, last = value.rpartition("/")
    if last in KNOWN_SUBDIRS and "://" in head and head.split("://", 1)[1]:
        value = head
    return value


def channel_display_name(base_url: str) -> str:
    """The short name conda prints in `conda list` (`conda-forge`, `pkgs/main`, `pypi`).

    For `file://` channels conda prints the last path segment; for other hosts the path.
    """
    if base_url == PYPI:
        return PYPI
    parts = urlsplit(base_url)
    path = _TOKEN_RE.sub("", parts.path).strip("/")
    if parts.scheme == "file":
        return path.rsplit("/", 1)[-1]
    return path


def channel_base_url(base_url: str) -> str:
    """The `base_url` field conda prints: the channel URL without credentials."""
    if base_url == PYPI:
        return f"{CHANNEL_ALIAS}/{PYPI}"
    return mask_url(base_url, hide=True)


def split_package_url(url: str) -> tuple[str, str, str]:
    """Split `<channel>/<subdir>/<file>` into (canonical channel, subdir, file name)."""
    head, _, filename = url.rstrip("/").rpartition("/")
    channel, _, subdir = head.rpartition("/")
    return canonical_channel(channel), subdir, filename


def split_archive_name(filename: str) -> tuple[str, str, str] | None:
    """`numpy-1.26.4-py311h64a7726_0.conda` -> (`numpy`, `1.26.4`, `py311h64a7726_0`).

    Conda names may contain dashes, versions and builds may not: split from the right.
    Returns None when the name is not `name-version-build[.conda|.tar.bz2]`.
    """
    stem = filename
    for suffix in _ARCHIVE_SUFFIXES:
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    parts = stem.rsplit("-", 2)
    if len(parts) != 3 or not all(parts):
        return None
    return parts[0], parts[1], parts[2]


def mask_url(url: str, *, hide: bool = False) -> str:
    """Hide credentials in a URL: `user:pass@`, `password=` query values, a port that is not
    a number (`redis://:secret/0`, a forgotten `@host`), and anaconda.org `/t/<token>/`.

    With `hide=True` they are dropped entirely (for conda's `base_url`); otherwise they are
    replaced by `***` so a reader can see that credentials were present. Written without
    urlsplit so that a malformed URL (a password holding `/`, `?` or `#`, a bad IPv6 host) is
    masked too instead of raising or leaking.
    """
    match = _SCHEME_RE.match(url)
    if match is None:
        return url
    head, rest = match.group(1), url[match.end() :]
    authority_end = len(rest)
    for sep in "/?#":
        found = rest.find(sep)
        if found != -1:
            authority_end = min(authority_end, found)
    authority, tail = rest[:authority_end], rest[authority_end:]
    hidden = "" if hide else "***@"
    if "@" in authority:
        authority = hidden + authority.rsplit("@", 1)[1]
    elif "@" in tail:  # the userinfo held a '/', '?' or '#': hide everything up to the last '@'
        authority, tail = hidden + rest.rsplit("@", 1)[1], ""
    host, colon, port = authority.rpartition(":")
    if colon and port and not port.isdigit() and "]" not in port:
        authority = host + ("" if hide else ":***")
    tail = _TOKEN_RE.sub("" if hide else "/t/***", tail)
    if hide:
        tail = _SECRET_PARAM_RE.sub(lambda m: m.group(1), tail)
        tail = re.sub(r"&{2,}", "&", re.sub(r"\?&+", "?", tail)).rstrip("?&")
    else:
        tail = _SECRET_PARAM_RE.sub(lambda m: f"{m.group(1)}{m.group(2)}=***", tail)
    return head + authority + tail

"""Pick the loader for a lock file and run it.

Content decides, because people rename files (`prod.lock`, `golden.json`); the file name only
breaks ties and names the loader to blame when no content matches, so a broken
`conda-lock.yml` is reported as a broken conda-lock file rather than as "unknown format".
"""

from __future__ import annotations

from fnmatch import fnmatch
from pathlib import Path

from producer.locks.conda_lock import CondaLockLoader
from producer.locks.environment_yml import EnvironmentYmlLoader
from producer.locks.explicit import ExplicitLoader
from producer.locks.golden import GoldenLoader
from producer.locks.interface import LockError, LockLoader
from producer.locks.pixi import PixiLoader
from worker.models import Lock

# Sniffing order matters: the narrowest signatures come first (an @EXPLICIT marker, pixi's
# `environments:`), environment.yml's bare `dependencies:` last.
_LOADERS: tuple[LockLoader, ...] = (
    ExplicitLoader(),
    PixiLoader(),
    CondaLockLoader(),
    GoldenLoader(),
    EnvironmentYmlLoader(),
)
_BY_FORMAT: dict[str, LockLoader] = {loader.format: loader for loader in _LOADERS}
FORMATS: tuple[str, ...] = tuple(loader.format for loader in _LOADERS)

_NAME_HINTS: tuple[tuple[str, str], ...] = (
    ("pixi.lock", "pixi"),
    ("*conda-lock.yml", "conda-lock"),
    ("*conda-lock.yaml", "conda-lock"),
    ("environment.yml", "environment-yml"),
    ("environment.yaml", "environment-yml"),
    ("*.lock", "explicit"),
    ("*.txt", "explicit"),
    ("*.json", "golden"),
)


def load_lock(
    path: Path,
    *,
    fmt: str | None = None,
    platform: str | None = None,
    environment: str | None = None,
) -> Lock:
    """Read, recognise and normalize a lock for one platform (default: this host's)."""
    path = Path(path)
    if fmt is not None and fmt not in _BY_FORMAT:
        raise LockError(path, None, f"unknown lock format {fmt!r}; use one of {', '.join(FORMATS)}")
    text = read_text(path)
    loader = _BY_FORMAT[fmt] if fmt is not None else detect(path, text)
    if platform is None:
        import rattler

        platform = str(rattler.Subdir.current())
    selected = platform
    return loader.load(path, text, platform=selected, environment=environment)


def read_text(path: Path) -> str:
    """The file as text, with a UTF-8 byte-order mark dropped; a LockError for anything else."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise LockError(path, None, f"cannot read the lock file: {reason}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise LockError(
            path, line, f"not UTF-8 text (byte 0x{data[exc.start]:02x} cannot be decoded)"
        ) from None
    if not text.strip():
        raise LockError(path, None, "the lock file is empty")
    return text


def detect(path: Path, text: str) -> LockLoader:
    hinted = _hinted_format(path)
    for loader in _LOADERS:
        if loader.sniff(path, text):
            return loader
    if hinted is not None:
        return _BY_FORMAT[hinted]
    raise LockError(
        path,
        None,
        f"cannot tell which kind of lock this is; pass a format ({', '.join(FORMATS)})",
    )


def _hinted_format(path: Path) -> str | None:
    name = path.name.lower()
    for pattern, fmt in _NAME_HINTS:
        if fnmatch(name, pattern):
            return fmt
    return None

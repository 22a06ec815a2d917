"""Pick the loader for a lock file and run it.

Content decides, because people rename files (`prod.lock`, `golden.json`); the file name only
breaks ties and names the loader to blame when no content matches, so a broken
`conda-lock.yml` is reported as a broken conda-lock file rather than as "unknown format".

Only the chosen loader is imported: each pulls in its own parsers (YAML, JSON, rattler) and
the pydantic models, which a run that fails on a missing file never needs.
"""

from __future__ import annotations

from fnmatch import fnmatch
from pathlib import Path
from typing import TYPE_CHECKING

from producer.locks import signatures
from producer.locks.interface import LockError, LockLoader

if TYPE_CHECKING:
    from worker.models import Lock

FORMATS: tuple[str, ...] = tuple(fmt for fmt, _ in signatures.SNIFFERS)

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
    if fmt is not None and fmt not in FORMATS:
        raise LockError(path, None, f"unknown lock format {fmt!r}; use one of {', '.join(FORMATS)}")
    text = read_text(path)
    if fmt is not None:
        _refuse_foreign(path, text, fmt)
    loader = loader_for(fmt) if fmt is not None else detect(path, text)
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
    found = _detected(text)
    if found is not None:
        return loader_for(found)
    hinted = _hinted_format(path)
    if hinted is not None:
        return loader_for(hinted)
    raise LockError(
        path,
        None,
        f"cannot tell which kind of lock this is; pass a format ({', '.join(FORMATS)})",
    )


def loader_for(fmt: str) -> LockLoader:
    """The loader of one of FORMATS, imported on first use."""
    if fmt == "explicit":
        from producer.locks.explicit import ExplicitLoader

        return ExplicitLoader()
    if fmt == "pixi":
        from producer.locks.pixi import PixiLoader

        return PixiLoader()
    if fmt == "conda-lock":
        from producer.locks.conda_lock import CondaLockLoader

        return CondaLockLoader()
    if fmt == "golden":
        from producer.locks.golden import GoldenLoader

        return GoldenLoader()
    if fmt == "environment-yml":
        from producer.locks.environment_yml import EnvironmentYmlLoader

        return EnvironmentYmlLoader()
    raise ValueError(f"not a lock format: {fmt!r}")


# An environment file may be forced either way: `golden` on a pinned spec file is how it
# becomes a full lock, `environment-yml` on an export reads it as constraints.
_INTERCHANGEABLE = frozenset({"golden", "environment-yml"})


def _detected(text: str) -> str | None:
    found = signatures.sniff(signatures.head(text))
    if found == "environment-yml" and signatures.env_export(text):
        return "golden"  # an export whose `prefix:` key lies past the head
    return found


def _refuse_foreign(path: Path, text: str, fmt: str) -> None:
    """A forced format is refused when the content carries another format's signature.

    Reading a conda-lock file as pixi (or the reverse) would relabel whatever the other
    loader makes of it, or report its errors against the wrong format.
    """
    found = _detected(text)
    if found is None or found == fmt:
        return
    if {found, fmt} <= _INTERCHANGEABLE and signatures.environment_yml(signatures.head(text)):
        return
    raise LockError(
        path,
        1,
        f"this is a {found} file, not {fmt}: pass --lock-format {found} or leave the format out",
    )


def _hinted_format(path: Path) -> str | None:
    name = path.name.lower()
    for pattern, fmt in _NAME_HINTS:
        if fnmatch(name, pattern):
            return fmt
    return None

"""The contract every lock loader follows, and the one error they all raise.

Callers (the CLI, the fleet producer) only ever catch `LockError`: whatever is wrong with a
lock file is the user's to fix, so it must arrive as `file:line: what is wrong`, not as a
traceback from a YAML or JSON library.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # pydantic is imported by the loaders, when a lock is actually read
    from worker.models import Lock


class LockError(Exception):
    """A lock file that cannot be used, pointing at the place to fix."""

    def __init__(self, path: str | Path, line: int | None, message: str) -> None:
        self.path = str(path)
        self.line = line
        self.message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        if self.line is None:
            return f"{self.path}: {self.message}"
        return f"{self.path}:{self.line}: {self.message}"


class PlatformMissing(LockError):
    """The lock is well-formed but has nothing for the requested platform.

    Told apart from other errors because across a fleet it is one host's problem (that host
    is ERROR), while a malformed lock is the user's mistake and stops the whole check.
    """


class LockLoader(Protocol):
    """One lock format: recognise it cheaply, then normalize it for one platform."""

    format: str

    def sniff(self, path: Path, text: str) -> bool:
        """True when `text` looks like this format; must be cheap and never raise."""
        ...

    def load(self, path: Path, text: str, *, platform: str, environment: str | None) -> Lock:
        """Normalize the lock for `platform`; raise `LockError` for anything malformed."""
        ...

"""What every snapshot source promises: a read-only listing of one prefix."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from worker.models import Snapshot


class SnapshotError(Exception):
    """The prefix could not be read: not an environment, corrupt record, conda failed.

    Raised for problems the user can act on; the message names the file or command.
    """


class SnapshotSource(Protocol):
    """A way to list a prefix. Implementations must never modify the prefix."""

    name: str

    def snapshot(self, prefix: Path) -> Snapshot: ...

"""`lockstep demo`, the README's first command: a real audit that cleans up after itself."""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def children_of(pid: int) -> list[int]:
    """Every live process whose parent chain reaches `pid`, or whose session `pid` began."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] == "Z":
            continue
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def demo_leftovers(before: set[str]) -> set[str]:
    return existing() - before


def existing() -> set[str]:
    prefixes = ("lockstep-demo-", "lockstep-redis-")
    return {p.name for p in Path(tempfile.gettempdir()).iterdir() if p.name.startswith(prefixes)}


def worker_processes(marker: str) -> list[str]:
    """Command lines (from /proc, never truncated) of live processes containing `marker`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in argv:
            found.append(argv)
    return found


def test_demo_shows_every_status_and_leaves_nothing_behind() -> None:
    before = existing()
    result = subprocess.run(
        [sys.executable, "-m", "producer.cli", "demo", "--timeout", "4"],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for text in (
        "demo-web-1",
        "demo-web-3",
        "demo-gpu-1",
        "DRIFT",
        "UNREACHABLE",
        "numpy",
        "PIP_SHADOWS_CONDA",
        "EXTRA",
        "2 OK, 1 DRIFT, 0 ERROR, 1 UNREACHABLE",
    ):
        assert text in out, text
    assert "would exit 1" in result.stderr
    assert demo_leftovers(before) == set()
    assert worker_processes("--hostname demo-web-") == []


def test_demo_cleans_up_on_ctrl_c() -> None:
    before = existing()
    proc = subprocess.Popen(
        [sys.executable, "-m", "producer.cli", "demo", "--timeout", "60"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(worker_processes("--hostname demo-web-")) < 3:
        time.sleep(0.2)
    assert worker_processes("--hostname demo-web-"), "demo workers never started"
    time.sleep(2)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=60)
    time.sleep(0.5)
    assert worker_processes("--hostname demo-web-") == []
    assert children_of(proc.pid) == []
    assert demo_leftovers(before) == set()

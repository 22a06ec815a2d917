"""RELIABILITY.md from one run of the fault-injection tests.

Run from the repository root:  .venv/bin/python -m benchmarks.reliability
It runs `pytest -m faults tests/test_faults.py` once with LOCKSTEP_RELIABILITY_OUT set, so
every audit the scenarios make appends its figures, and turns them into one table. The
figures come from the tests' own assertions' inputs: a number here is what a test checked.
`--from FILE --junit XML` rebuilds the page from an earlier run without running it again.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "RELIABILITY.md"
COLUMNS = ("targeted", "verified", "unreachable", "lost", "duplicated", "wrong", "exit_code")


def run_tests(records: Path, junit: Path) -> int:
    env = {**os.environ, "LOCKSTEP_RELIABILITY_OUT": str(records)}
    argv = [sys.executable, "-m", "pytest", "-m", "faults", "tests/test_faults.py", "-q"]
    argv += ["-p", "no:cacheprovider", f"--junitxml={junit}"]
    return subprocess.run(argv, cwd=ROOT, env=env, check=False).returncode


def outcomes(junit: Path) -> dict[str, str]:
    """test function name -> passed / failed / error / skipped."""
    found: dict[str, str] = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        name = case.get("name", "")
        if case.find("failure") is not None:
            found[name] = "failed"
        elif case.find("error") is not None:
            found[name] = "error"
        elif case.find("skipped") is not None:
            found[name] = "skipped"
        else:
            found[name] = "passed"
    return found


def load_records(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def redis_version() -> str:
    from producer.embedded_redis import find_redis_server

    try:
        out = subprocess.run(
            [str(find_redis_server()), "--version"], capture_output=True, text=True, check=False
        ).stdout
    except (OSError, RuntimeError):
        return "unknown"
    return out.split()[2].removeprefix("v=") if len(out.split()) > 2 else out.strip()


def render(records: list[dict[str, Any]], results: dict[str, str]) -> str:
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    machine = (
        f"{platform.system()} {platform.release()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, redis-server {redis_version()}"
    )
    lines = [
        "# Reliability",
        "",
        "Figures of one run of the fault-injection tests (`tests/test_faults.py`, pytest marker",
        "`faults`): real redis-server SIGTERMed and restarted, real `lockstep worker` processes",
        "SIGKILLed, poison and bomb messages pushed onto live queues. Each row is one audit.",
        "",
        f"- run: {now}",
        f"- machine: {machine}",
        "- regenerate: `.venv/bin/python -m benchmarks.reliability`",
        "",
        "**verified**: hosts with a verdict of their own (OK, DRIFT or ERROR);",
        "**lost**: hosts whose worker finished verifying in time but which the report shows",
        "UNREACHABLE (must be 0); **duplicated**: hosts listed twice (must be 0); **wrong**:",
        "statuses other than the scenario's exact expectation (must be 0); **test**: whether",
        "every assertion of that scenario held.",
        "",
        "The broker runs with `requirepass`; the AOF scenario with `appendonly yes` and",
        '`appendfsync always`, the other restarts with no persistence at all (`save ""`,',
        "`appendonly no`), so Redis comes back empty: no registry, no queues, no locks.",
        "In both, every verification finishes while Redis is down, so each verdict is",
        "delivered only through the worker's retries.",
        "",
        "| scenario | test | " + " | ".join(c.replace("_", " ") for c in COLUMNS) + " |",
        "|---|---|" + "---:|" * len(COLUMNS),
    ]
    for record in records:
        test = record.get("test", "").rsplit("::", 1)[-1]
        outcome = results.get(test, "not run")
        cells = [str(record.get(c, "")) for c in COLUMNS]
        lines.append(f"| {record['scenario']} | {outcome} | " + " | ".join(cells) + " |")
    recorded = {r.get("test", "").rsplit("::", 1)[-1] for r in records}
    for test, outcome in sorted(results.items()):
        if test not in recorded:
            lines.append(f"| `{test}` (no audit recorded) | {outcome} |" + " |" * len(COLUMNS))
    total = {c: sum(int(r.get(c, 0)) for r in records) for c in ("lost", "duplicated", "wrong")}
    lines += [
        "",
        f"Totals: lost {total['lost']}, duplicated {total['duplicated']}, "
        f"wrong {total['wrong']}; tests passed "
        f"{sum(1 for v in results.values() if v == 'passed')} of {len(results)}.",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--from", dest="records", type=Path, help="records of an earlier run")
    parser.add_argument("--junit", type=Path, help="junit XML of that run")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args()
    if args.records:
        records = load_records(args.records)
        results = outcomes(args.junit) if args.junit else {}
        code = 0
    else:
        with tempfile.TemporaryDirectory(prefix="lockstep-reliability-") as scratch:
            records_path, junit = Path(scratch) / "records.jsonl", Path(scratch) / "junit.xml"
            code = run_tests(records_path, junit)
            records = load_records(records_path)
            results = outcomes(junit) if junit.exists() else {}
    args.output.write_text(render(records, results))
    print(f"wrote {args.output} ({len(records)} audits)", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())

"""The exit code is a contract: 1 only with a finding, no traceback ever, no password shown.

Hypothesis drives the real CLI (click's runner, in process, through the same LockstepGroup the
console script uses) with generated option values and lock contents against a real prefix,
and against a real Redis with no worker for fleet checks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from producer.cli import main
from producer.embedded_redis import EmbeddedRedis
from producer.outcome import exit_code_for_hosts
from tests.support import condafactory as cf
from tests.support import lockfiles
from worker.models import Finding, FindingKind, HostReport, Status

DOCUMENTED = {0, 1, 2, 3, 4, 5}
MARKUP = ["[/x]", "[prod]", "envs/x[/y]", "[bold]", "]", "[", "[link=x]y[/link]"]
PASSWORDS = st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=10, max_size=14).map(
    lambda s: "pw" + s
)
FUNCTION_FIXTURES = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]


def timeouts(valid: st.SearchStrategy[float]) -> st.SearchStrategy[str]:
    odd = st.sampled_from(["inf", "-inf", "nan", "NaN", "0", "-0", "-5", "1e400", "1e300", "x", ""])
    any_float = st.floats(allow_nan=True, allow_infinity=True).map(repr)
    return st.one_of(odd, any_float, valid.map(repr))


def assert_contract(result: Result, *secrets: str) -> dict[str, Any] | None:
    out, err = result.stdout, result.stderr
    assert result.exit_code in DOCUMENTED, (result.exit_code, out, err)
    assert result.exception is None or isinstance(result.exception, SystemExit), err
    assert "Traceback" not in out and "Traceback" not in err, err
    for secret in secrets:
        assert secret not in out and secret not in err, (secret, err)
    try:
        report = json.loads(out) if out.strip() else None
    except json.JSONDecodeError:
        report = None
    has_findings = report is not None and any(h["findings"] for h in report["hosts"])
    if result.exit_code == 1:
        assert has_findings, (out, err)
    if has_findings:
        assert result.exit_code == 1, (result.exit_code, err)
    if report is not None:
        assert report["exit_code"] == result.exit_code or result.exit_code == 2, err
    return report


@pytest.fixture(scope="module")
def prefixes(
    tmp_path_factory: pytest.TempPathFactory, conda_channel: cf.Channel
) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("contract")
    clean, drift = root / "clean", root / "drift"
    cf.install_prefix(conda_channel, cf.CLEAN_SPECS, clean)
    cf.install_prefix(conda_channel, cf.CLEAN_SPECS, drift)
    cf.replace_packages(conda_channel, ["numpy ==1.26.5"], drift)
    lock = root / "conda-lock.yml"
    lock.write_text(lockfiles.conda_lock({"linux-64": clean}))
    explicit = root / "explicit.txt"
    explicit.write_text(lockfiles.explicit(clean, hash_form="sha256:"))
    return {"clean": clean, "drift": drift, "lock": lock, "explicit": explicit, "root": root}


@st.composite
def lock_contents(draw: st.DrawFn, real: list[bytes]) -> bytes:
    base = draw(st.sampled_from(real))
    kind = draw(st.sampled_from(["real", "truncated", "mutated", "random", "spliced"]))
    if kind == "real":
        return base
    if kind == "truncated":
        return base[: draw(st.integers(0, len(base)))]
    if kind == "mutated":
        data = bytearray(base)
        for _ in range(draw(st.integers(1, 5))):
            i = draw(st.integers(0, len(data) - 1))
            data[i] = draw(st.integers(0, 255))
        return bytes(data)
    if kind == "spliced":
        i = draw(st.integers(0, len(base)))
        return (
            base[:i] + draw(st.sampled_from([b"[/x]", b"\x00", b"\n  - {", b"\xff\xfe"])) + base[i:]
        )
    return draw(st.binary(max_size=300))


def test_local_checks_keep_the_contract(prefixes: dict[str, Path]) -> None:
    real = [prefixes["lock"].read_bytes(), prefixes["explicit"].read_bytes()]
    counter = iter(range(10**9))

    @settings(max_examples=120, deadline=None, suppress_health_check=FUNCTION_FIXTURES)
    @given(
        which=st.sampled_from(["clean", "drift"]),
        content=lock_contents(real),
        timeout=st.none() | timeouts(st.floats(0.001, 1e5)),
        env=st.none() | st.sampled_from(MARKUP) | st.text(max_size=8),
        platform=st.none() | st.sampled_from(["linux-64", "osx-arm64", "[/x]", "nope"]),
        lock_format=st.sampled_from(["auto", "auto", "conda-lock", "explicit", "pixi", "golden"]),
        strict=st.booleans(),
        ignore=st.lists(st.sampled_from(["numpy", "python", "[/x]", ""]), max_size=2),
        junit=st.booleans(),
    )
    def run(
        which: str,
        content: bytes,
        timeout: str | None,
        env: str | None,
        platform: str | None,
        lock_format: str,
        strict: bool,
        ignore: list[str],
        junit: bool,
    ) -> None:
        lock = prefixes["root"] / f"lock-{next(counter)}"
        lock.write_bytes(content)
        args = ["check", "--local", "-p", str(prefixes[which]), "--lock", str(lock)]
        args += ["--lock-format", lock_format]
        if timeout is not None:
            args += ["--timeout", timeout]
        if env is not None:
            args += ["--environment", env]
        if platform is not None:
            args += ["--platform", platform]
        if strict:
            args.append("--strict")
        for name in ignore:
            args += ["--ignore", name]
        if junit:
            args += ["-f", "junit", "-o", str(lock) + ".xml"]
        result = CliRunner().invoke(main, [*args, "-f", "json"])
        assert_contract(result)
        assert result.exit_code != 5, result.stderr  # no input may reach a bug

    run()


FLEET_TYPOS = [
    "redis:/{pw}@127.0.0.1:6379",
    "redis:/:{pw}@host:6379/0",
    "redis://:{pw}/0",
    "redis://user:{pw}@[::1/0",
    "http://:{pw}@x",
    "redis://h:6379/x?password={pw}",
    "sentinel://:{pw}@s1:26379;redis://x",
    "redis://:{pw}@127.0.0.1:1/0",
    "redis://127.0.0.1:1/0?password={pw}",
    "rediss://u:{pw}@127.0.0.1:1/0",
]


@pytest.fixture
def empty_redis(redis_server: EmbeddedRedis) -> EmbeddedRedis:
    redis_server.client().flushall()
    return redis_server


def test_fleet_checks_without_workers_keep_the_contract(
    empty_redis: EmbeddedRedis, prefixes: dict[str, Path]
) -> None:
    @settings(max_examples=30, deadline=None, suppress_health_check=FUNCTION_FIXTURES)
    @given(
        broker=st.one_of(st.just(None), st.sampled_from(FLEET_TYPOS)),
        password=PASSWORDS,
        timeout=st.one_of(
            st.sampled_from(["inf", "nan", "-1", "0", "1e400"]), st.floats(0.05, 0.4).map(repr)
        ),
        targets=st.sampled_from(
            [["--host", "ghost-1"], ["--hosts", "web-*"], ["--all"], ["--host", "[/x]"], []]
        ),
        env=st.none() | st.sampled_from(MARKUP),
        fmt_out=st.booleans(),
    )
    def run(
        broker: str | None,
        password: str,
        timeout: str,
        targets: list[str],
        env: str | None,
        fmt_out: bool,
    ) -> None:
        url = empty_redis.url if broker is None else broker.format(pw=password)
        args = ["check", "--broker", url, "--lock", str(prefixes["lock"]), *targets]
        args += ["--timeout", timeout]
        if env is not None:
            args += ["--env", env]
        result = CliRunner().invoke(main, [*args, "-f", "json"])
        assert_contract(result, password)
        assert result.exit_code != 5, result.stderr
        if broker is not None and result.exit_code not in (2, 4):
            pytest.fail(f"{url}: {result.exit_code} {result.stderr}")

    run()


def test_exit_code_is_one_only_with_a_finding() -> None:
    finding = Finding(kind=FindingKind.VERSION, name="numpy", expected="1", actual="2")

    @settings(max_examples=200, deadline=None)
    @given(
        st.lists(
            st.tuples(st.sampled_from(list(Status)), st.booleans()),
            max_size=6,
        ),
        st.none() | st.just("broker lost for 12 s"),
    )
    def run(spec: list[tuple[Status, bool]], infra: str | None) -> None:
        hosts = [
            HostReport(host=f"h{i}", status=s, findings=[finding] if f else [])
            for i, (s, f) in enumerate(spec)
        ]
        code = exit_code_for_hosts(hosts, infra)
        assert (code == 1) == any(f for _, f in spec)
        if code != 1:
            if infra:
                assert code == 4
            elif not hosts or any(s is not Status.OK for s, _ in spec):
                assert code == 3
            else:
                assert code == 0

    run()


@pytest.fixture
def crashing_command() -> Any:
    @click.command("crash-for-test")
    @click.option("--kind", default="bug")
    def crash(kind: str) -> None:
        if kind == "interrupt":
            raise KeyboardInterrupt
        if kind == "sysexit":
            raise SystemExit("gone")
        raise RuntimeError("redis://:hunter2secret@queue:6379/0 went [/x] wrong")

    main.add_command(crash)
    try:
        yield crash
    finally:
        main.commands.pop("crash-for-test", None)


def test_an_internal_error_is_exit_5_in_one_line(
    crashing_command: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LOCKSTEP_DEBUG", raising=False)
    result = CliRunner().invoke(main, ["crash-for-test"])
    assert result.exit_code == 5
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lockstep: internal error: RuntimeError: ")
    assert lines[0].endswith("(run with --debug for the traceback)")
    assert "hunter2secret" not in result.stderr
    debug = CliRunner().invoke(main, ["--debug", "crash-for-test"])
    assert debug.exit_code == 5 and "Traceback" in debug.stderr
    monkeypatch.setenv("LOCKSTEP_DEBUG", "1")
    env = CliRunner().invoke(main, ["crash-for-test"])
    assert env.exit_code == 5 and "Traceback" in env.stderr
    assert "--debug" not in env.stderr.splitlines()[-1]


def test_ctrl_c_is_130_and_one_line(crashing_command: Any) -> None:
    result = CliRunner().invoke(main, ["crash-for-test", "--kind", "interrupt"])
    assert result.exit_code == 130 and "lockstep: interrupted" in result.stderr
    assert "Traceback" not in result.stderr


def test_help_documents_every_code_and_debug() -> None:
    top = CliRunner().invoke(main, ["--help"])
    assert top.exit_code == 0 and "--debug" in top.stdout
    check = CliRunner().invoke(main, ["check", "--help"])
    for text in (top.stdout, check.stdout):
        for code in range(6):
            assert f"  {code}  " in text, (code, text)
    assert "LOCKSTEP_BROKER" in check.stdout and "ps" in check.stdout


def lockstep(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "producer.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, **env},
    )


@pytest.mark.parametrize(
    "args",
    [
        ("check", "--local", "--lock", "x", "--timeout", "inf"),
        ("check", "--local", "--lock", "x", "--timeout", "nan"),
        ("check", "--broker", "redis:/host:6379", "--lock", "x", "--all"),
        ("worker", "--refresh", "-5", "-p", "/tmp"),
    ],
)
def test_a_real_process_says_usage_error_without_traceback(args: tuple[str, ...]) -> None:
    result = lockstep(*args)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and "Error:" in result.stderr


def test_a_closed_stdout_is_not_read_as_drift(prefixes: dict[str, Path]) -> None:
    argv = [sys.executable, "-m", "producer.cli", "check", "--local", "-p", str(prefixes["drift"])]
    argv += ["--lock", str(prefixes["lock"]), "-f", "json"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader went away before lockstep wrote anything
    err = proc.stderr.read().decode()
    assert proc.wait(60) == 2, err
    assert "Traceback" not in err and "standard output was closed" in err

"""The fleet, for real: our own Redis, real `lockstep worker` processes, real prefixes.

One module-scoped fleet serves every test here:
  f-clean   the clean linux-64 prefix                     -> OK
  f-drift   numpy 1.26.5 instead of 1.26.4                -> DRIFT
  f-broken  a prefix without conda-meta/history           -> ERROR
  f-arm     a linux-aarch64 prefix, its own lock section  -> OK
  f-mac     registers osx-arm64, which the lock lacks     -> ERROR
  f-gone    targeted, but no worker ever runs             -> UNREACHABLE
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from producer.demo import start_worker, stop_workers, wait_registered
from producer.embedded_redis import EmbeddedRedis
from producer.fleet import MAX_PENDING_PER_HOST, FleetCheck, Target
from tests.support import condafactory as cf
from tests.support import lockfiles
from worker import codec
from worker.broker import BrokerURL
from worker.models import Status
from worker.registry import queue_name
from worker.service import pack_reply, reply_key

WORKERS = ("f-clean", "f-drift", "f-broken", "f-arm", "f-mac")


@dataclass
class Fleet:
    server: EmbeddedRedis
    broker: BrokerURL
    lock: Path
    root: Path
    procs: list[subprocess.Popen[bytes]]


def aarch64_channel(root: Path) -> cf.Channel:
    specs = [
        cf.PackageSpec(
            "libzlib", "1.3.1", build="h68df207_1", build_number=1, subdir="linux-aarch64"
        ),
        cf.PackageSpec(
            "openssl",
            "3.3.1",
            build="h86ecc28_0",
            subdir="linux-aarch64",
            depends=["libzlib >=1.3.1,<2.0a0"],
        ),
        cf.PackageSpec("tzdata", "2024a", build="h0c530f3_0", subdir="noarch", noarch="generic"),
    ]
    return cf.build_channel(specs, root / "arm-channel")


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory, conda_channel: cf.Channel) -> Iterator[Fleet]:
    root = tmp_path_factory.mktemp("fleet")
    clean = root / "clean"
    cf.install_prefix(conda_channel, cf.CLEAN_SPECS, clean)
    drift = root / "drift"
    cf.install_prefix(conda_channel, cf.CLEAN_SPECS, drift)
    cf.replace_packages(conda_channel, ["numpy ==1.26.5"], drift)
    broken = root / "broken"
    shutil.copytree(clean, broken, symlinks=True)
    cf.remove_history(broken)
    arm = root / "arm"
    cf.install_prefix(aarch64_channel(root), ["openssl", "tzdata"], arm, platform="linux-aarch64")
    lock = root / "conda-lock.yml"
    lock.write_text(lockfiles.conda_lock({"linux-64": clean, "linux-aarch64": arm}))

    server = EmbeddedRedis(maxclients=1_000).start()
    broker = BrokerURL.parse(server.url)
    envs = {"f-clean": clean, "f-drift": drift, "f-broken": broken, "f-arm": arm, "f-mac": clean}
    procs: list[subprocess.Popen[bytes]] = []
    logs: list[Path] = []
    try:
        for host in WORKERS:
            log = root / f"{host}.log"
            extra = ("--platform", "osx-arm64") if host == "f-mac" else ()
            procs.append(start_worker(broker, host, {"prod": envs[host]}, log, extra))
            logs.append(log)
        wait_registered(broker, set(WORKERS), procs, logs, timeout=90)
        yield Fleet(server, broker, lock, root, procs)
    finally:
        stop_workers(procs)
        server.stop()


def lockstep(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "producer.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def check_argv(fleet: Fleet, *args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "producer.cli",
        "check",
        "--broker",
        fleet.broker.url,
        "--lock",
        str(fleet.lock),
        *args,
    ]


def fleet_check(fleet: Fleet, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        check_argv(fleet, *args), capture_output=True, text=True, timeout=120, check=False
    )


def test_hosts_lists_every_registered_worker(fleet: Fleet) -> None:
    result = lockstep("hosts", "--broker", fleet.broker.url, "--format", "json")
    assert result.returncode == 0, result.stderr
    hosts = {h["host"]: h for h in json.loads(result.stdout)}
    assert set(WORKERS) <= set(hosts)
    assert hosts["f-arm"]["platform"] == "linux-aarch64"
    assert hosts["f-clean"]["platform"] == "linux-64"
    assert hosts["f-mac"]["platform"] == "osx-arm64"
    assert hosts["f-clean"]["environments"] == {"prod": str(fleet.root / "clean")}
    assert time.time() - hosts["f-clean"]["last_seen"] < 30
    time.sleep(2.5)  # past a registry refresh (--refresh 2): it must keep the start time
    again = json.loads(lockstep("hosts", "--broker", fleet.broker.url, "--format", "json").stdout)
    clean = next(h for h in again if h["host"] == "f-clean")
    assert 0 < clean["started_at"] <= clean["last_seen"]
    table = lockstep("hosts", "--broker", fleet.broker.url)
    assert "f-drift" in table.stdout and "linux-aarch64" in table.stdout


def test_fleet_statuses_matrix_and_every_format(fleet: Fleet, tmp_path: Path) -> None:
    junit, md, js = tmp_path / "r.xml", tmp_path / "r.md", tmp_path / "r.json"
    result = fleet_check(
        fleet,
        "--hosts",
        "f-*",
        "--host",
        "f-gone",
        "--timeout",
        "15",
        "--format",
        "junit",
        "--output",
        str(junit),
        "--format",
        "markdown",
        "--output",
        str(md),
        "--format",
        "json",
        "--output",
        str(js),
        "--format",
        "table",
    )
    assert result.returncode == 1, result.stderr
    report = json.loads(js.read_text())
    status = {h["host"]: h["status"] for h in report["hosts"]}
    assert status == {
        "f-clean": "OK",
        "f-drift": "DRIFT",
        "f-broken": "ERROR",
        "f-arm": "OK",
        "f-mac": "ERROR",
        "f-gone": "UNREACHABLE",
    }
    hosts = {h["host"]: h for h in report["hosts"]}
    assert "not a conda environment" in hosts["f-broken"]["error"]
    assert "osx-arm64" in hosts["f-mac"]["error"]
    assert "has ever registered" in hosts["f-gone"]["error"]
    assert [(f["kind"], f["name"]) for f in hosts["f-drift"]["findings"]] == [("VERSION", "numpy")]
    assert hosts["f-arm"]["packages"] == 3
    (row,) = report["matrix"]
    assert row["name"] == "numpy" and row["expected"].startswith("1.26.4 py311h64a7726_0")
    assert [(v["actual"].split()[0], v["hosts"]) for v in row["variants"]] == [
        ("1.26.5", ["f-drift"])
    ]
    assert report["summary"] == {
        "targeted": 6,
        "ok": 2,
        "drift": 1,
        "error": 2,
        "unreachable": 1,
        "findings": 1,
    }
    assert report["exit_code"] == 1

    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert set(cases) == {f"{h} [prod]" for h in WORKERS} | {"f-gone"}
    failures = cases["f-drift [prod]"].findall("failure")
    assert [f.get("type") for f in failures] == ["VERSION"]
    assert cases["f-gone"].find("error").get("type") == "UNREACHABLE"  # type: ignore[union-attr]
    assert cases["f-broken [prod]"].find("error").get("type") == "ERROR"  # type: ignore[union-attr]
    assert cases["f-clean [prod]"].find("failure") is None
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("6", "1", "3")

    markdown = md.read_text()
    assert "| f-drift | ❌ DRIFT | 1 |" in markdown
    assert "| numpy |" in markdown and "f-drift" in markdown
    assert "packages that differ" in result.stdout and "UNREACHABLE" in result.stdout


@pytest.mark.parametrize(
    "args, code",
    [
        (("--host", "f-clean"), 0),
        (("--hosts", "f-clean,f-arm"), 0),
        (("--hosts", "f-clean", "--host", "f-drift"), 1),
        (("--hosts", "f-clean", "--host", "f-gone", "--timeout", "3"), 3),
        (("--host", "f-broken"), 3),
        (("--hosts", "nomatch-*"), 2),
        ((), 2),
    ],
)
def test_exit_codes(fleet: Fleet, args: tuple[str, ...], code: int) -> None:
    result = fleet_check(fleet, *args)
    assert result.returncode == code, result.stdout + result.stderr
    if code == 2:
        assert "Traceback" not in result.stderr and "lockstep: error:" in result.stderr


def test_broker_unreachable_is_exit_4_with_masked_url(fleet: Fleet, tmp_path: Path) -> None:
    result = lockstep(
        "check", "--broker", "redis://user:s3cret@127.0.0.1:1/0", "--lock", str(fleet.lock), "--all"
    )
    assert result.returncode == 4
    assert "unreachable" in result.stderr and "s3cret" not in result.stderr
    socket = lockstep("hosts", "--broker", f"redis+socket://{tmp_path}/none.sock")
    assert socket.returncode == 4


def test_bad_lock_is_exit_2_with_file_and_line(fleet: Fleet, tmp_path: Path) -> None:
    bad = tmp_path / "conda-lock.yml"
    bad.write_text("version: 1\npackage:\n  - name: x\n    version: [\n")
    result = lockstep("check", "--broker", fleet.broker.url, "--lock", str(bad), "--all")
    assert result.returncode == 2
    assert f"{bad}:" in result.stderr and "Traceback" not in result.stderr


def test_environment_not_allowed_is_error(fleet: Fleet) -> None:
    result = fleet_check(fleet, "--host", "f-clean", "--env", "../../etc", "--format", "json")
    assert result.returncode == 3
    (host,) = json.loads(result.stdout)["hosts"]
    assert host["status"] == "ERROR" and "is not allowed" in host["error"]


def test_all_targets_every_registered_host(fleet: Fleet) -> None:
    result = fleet_check(fleet, "--all", "--format", "json", "--timeout", "15")
    hosts = {h["host"] for h in json.loads(result.stdout)["hosts"]}
    assert set(WORKERS) <= hosts


def test_inventory_groups_with_their_own_lock(fleet: Fleet, tmp_path: Path) -> None:
    golden = tmp_path / "golden.json"
    golden.write_text(lockfiles.golden_json(fleet.root / "drift"))
    inventory = tmp_path / "fleet.toml"
    inventory.write_text(
        '[groups.web]\nhosts = ["f-clean"]\n\n'
        f'[groups.drifty]\nhosts = ["f-drift"]\nlock = "{golden.name}"\n'
    )
    result = fleet_check(
        fleet,
        "--inventory",
        str(inventory),
        "--group",
        "web",
        "--group",
        "drifty",
        "--format",
        "json",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert {h["host"]: h["status"] for h in report["hosts"]} == {"f-clean": "OK", "f-drift": "OK"}
    assert report["lock"] is None  # two locks in one audit
    missing = fleet_check(fleet, "--inventory", str(inventory), "--group", "nope")
    assert missing.returncode == 2 and "no group 'nope'" in missing.stderr
    broken = tmp_path / "broken.yml"
    broken.write_text("version: 1\npackage:\n  - name: [\n")
    inventory.write_text(f'[groups.web]\nhosts = ["f-clean"]\nlock = "{broken.name}"\n')
    bad = fleet_check(fleet, "--inventory", str(inventory), "--group", "web")
    assert bad.returncode == 2 and f"{broken}:" in bad.stderr and "Traceback" not in bad.stderr


def test_messages_for_dead_hosts_stay_bounded(fleet: Fleet) -> None:
    client = fleet.broker.client()
    check = FleetCheck(fleet.broker, timeout=0.2, platform_default="linux-64")
    for _ in range(MAX_PENDING_PER_HOST + 4):
        (report,) = check.run([Target("f-never", fleet.lock)]).reports
        assert report.status is Status.UNREACHABLE
    assert client.llen(queue_name("f-never")) <= MAX_PENDING_PER_HOST


def rogue_worker(
    client: redis.Redis, host: str, reply: bytes | None, stop: threading.Event
) -> None:
    """Answers every task on `host`'s queue with `reply` (built from the task's audit id)."""
    while not stop.is_set():
        item = client.brpop([queue_name(host)], timeout=1)
        if item is None:
            continue
        message = json.loads(item[1])
        import base64

        body = codec.decode_value(base64.b64decode(message["body"]))
        audit = body[1]["audit"]
        payload = reply if reply is not None else b"\xb1garbage"
        client.rpush(reply_key(audit), pack_reply(host, payload))


def test_malformed_and_oversized_verdicts_mark_only_that_host_error(fleet: Fleet) -> None:
    client = fleet.broker.client()
    stop = threading.Event()
    bomb = codec.encode({"host": "f-huge", "status": "OK", "findings": [], "pad": "x" * 10})
    oversized = bomb + b"\x00" * (5 * 1024 * 1024)
    threads = [
        threading.Thread(target=rogue_worker, args=(client, "f-garbage", None, stop), daemon=True),
        threading.Thread(
            target=rogue_worker, args=(client, "f-huge", oversized, stop), daemon=True
        ),
    ]
    for t in threads:
        t.start()
    try:
        check = FleetCheck(fleet.broker, timeout=15, platform_default="linux-64")
        reports = check.run(
            [Target(h, fleet.lock) for h in ("f-garbage", "f-huge", "f-clean")]
        ).reports
    finally:
        stop.set()
        for t in threads:
            t.join(5)
    by_host = {r.host: r for r in reports}
    assert by_host["f-garbage"].status is Status.ERROR
    assert "malformed verdict" in (by_host["f-garbage"].error or "")
    assert by_host["f-huge"].status is Status.ERROR
    assert "exceeds" in (by_host["f-huge"].error or "")
    assert by_host["f-clean"].status is Status.OK


def test_ctrl_c_prints_what_arrived(fleet: Fleet) -> None:
    proc = subprocess.Popen(
        check_argv(fleet, "--hosts", "f-clean,f-gone", "--timeout", "60", "--format", "json"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(6)
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert time.monotonic() - started < 10
    report = json.loads(out)
    status = {h["host"]: h["status"] for h in report["hosts"]}
    assert status == {"f-clean": "OK", "f-gone": "UNREACHABLE"}
    assert "interrupted" in err
    assert proc.returncode == 3


def test_tampered_lock_is_refused_by_the_worker(fleet: Fleet, tmp_path: Path) -> None:
    fresh = tmp_path / "conda-lock.yml"  # a lock no worker has cached yet
    shutil.copy(fleet.lock, fresh)
    client = fleet.broker.client()
    check = FleetCheck(fleet.broker, timeout=15, platform_default="linux-64")
    original_store = check._store

    def tampering_store(lock, stored):  # type: ignore[no-untyped-def]
        digest = original_store(lock, stored)
        data = codec.encode(lock.model_copy(update={"packages": []}).model_dump(mode="json"))
        client.set(f"lockstep:lock:{digest}", data)
        return digest

    check._store = tampering_store  # type: ignore[method-assign]
    (report,) = check.run([Target("f-clean", fresh)]).reports
    assert report.status is Status.ERROR
    assert "does not match its digest" in (report.error or "")


def test_progress_bar_on_a_terminal(fleet: Fleet) -> None:
    """On a terminal, stderr shows hosts answered / targeted while collecting."""
    import os
    import pty

    master, slave = pty.openpty()
    proc = subprocess.Popen(
        check_argv(fleet, "--hosts", "f-clean,f-gone", "--timeout", "4", "--format", "json"),
        stdout=subprocess.PIPE,
        stderr=slave,
        text=True,
    )
    os.close(slave)
    seen = b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            chunk = os.read(master, 4096)
        except OSError:
            break  # the child closed the terminal
        if not chunk:
            break
        seen += chunk
    out, _ = proc.communicate(timeout=30)
    os.close(master)
    text = seen.decode(errors="replace")
    assert "collecting verdicts" in text
    assert "1/2" in text
    assert json.loads(out)["summary"]["unreachable"] == 1


def test_forget_removes_a_decommissioned_host(fleet: Fleet) -> None:
    from worker.registry import HostInfo, register

    client = fleet.broker.client()
    register(client, HostInfo(host="f-retired", platform="linux-64", queue=queue_name("f-retired")))
    client.lpush(queue_name("f-retired"), b"stale")
    result = lockstep(
        "hosts", "--broker", fleet.broker.url, "--forget", "f-retired", "--format", "json"
    )
    assert result.returncode == 0, result.stderr
    assert "forgot f-retired" in result.stderr
    assert "f-retired" not in {h["host"] for h in json.loads(result.stdout)}
    assert not client.exists(queue_name("f-retired"))
    again = lockstep("hosts", "--broker", fleet.broker.url, "--forget", "f-retired")
    assert "no host 'f-retired' is registered" in again.stderr

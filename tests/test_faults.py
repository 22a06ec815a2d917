"""Fault injection, end to end: the gate must never lie, whatever breaks under it.

One module-scoped fleet of real `lockstep worker` processes (20 hosts, every fourth one
drifted) on a password-protected redis-server we start, SIGTERM and restart ourselves. Each
worker reads its prefix through a `--source` script whose delay the tests set, so a fault can
be injected while verifications are provably in flight. Every scenario asserts the exact
status of every host and the exit code, and records its figures for RELIABILITY.md
(`LOCKSTEP_RELIABILITY_OUT`, see benchmarks/reliability.py).
"""

from __future__ import annotations

import hashlib
import json
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.support import condafactory as cf
from tests.support import lockfiles
from tests.support.faults import (
    QUEUE_PREFIX,
    Capture,
    CliResult,
    CliRun,
    RestartableRedis,
    SourceState,
    Worker,
    audit_of,
    await_verdict,
    base_env,
    envelope,
    exit_code_for,
    fresh_hosts,
    inflating_payload,
    new_audit_id,
    object_count_bomb,
    push_reply,
    random_secret,
    registry,
    tally,
    task_body,
    verify_kwargs,
    wait_for,
    write_slow_source,
)
from worker import codec

pytestmark = pytest.mark.faults

FLEET_SIZE = 20
HOSTS = [f"fx-{i:02d}" for i in range(FLEET_SIZE)]
EXPECTED = {h: ("DRIFT" if i % 4 == 3 else "OK") for i, h in enumerate(HOSTS)}
AUDIT_TIMEOUT = "60"  # --timeout of a fault-free audit: generous for a loaded 2-core box
FAULT_TIMEOUT = "90"
RSS_BUDGET_MIB = 200  # a bomb that got through costs 380-880 MiB
PROBE_ATTEMPTS = 4
SILENT = "zz-silent"  # targeted, never registered, never answers


def queue(host: str) -> str:
    return QUEUE_PREFIX + host


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


@dataclass
class FaultFleet:
    root: Path
    server: RestartableRedis
    capture: Capture
    state: SourceState
    source: Path
    lock: Path
    prefixes: dict[str, Path]
    env: dict[str, str]
    workers: dict[str, Worker] = field(default_factory=dict)
    extra_workers: list[Worker] = field(default_factory=list)
    needs_probe: bool = False
    _replace_supported: bool | None = None

    # -- processes -------------------------------------------------------------------------

    def client(self) -> redis.Redis:
        return self.server.client()

    def make_worker(
        self,
        host: str,
        prefix: Path,
        *,
        env: dict[str, str] | None = None,
        broker_in_argv: bool = True,
    ) -> Worker:
        argv = [sys.executable, "-m", "producer.cli", "worker"]
        if broker_in_argv:
            argv += ["--broker", self.server.url]
        argv += ["--hostname", host, "--refresh", "2", "--source", str(self.source)]
        argv += ["-p", f"prod={prefix}", "--loglevel", "INFO"]
        worker_env = {**self.env, "LOCKSTEP_FAULT_HOST": host, **(env or {})}
        return Worker(host, prefix, argv, worker_env, self.capture)

    def replace_args(self) -> list[str]:
        """A SIGKILLed worker leaves a live-looking entry: its successor takes over, if it can."""
        if self._replace_supported is None:
            result = self.cli("worker", "--help").wait(60)
            self._replace_supported = "--replace" in result.stdout
        return ["--replace"] if self._replace_supported else []

    def cli(self, *args: str, env: dict[str, str] | None = None) -> CliRun:
        return CliRun(args, {**self.env, **(env or {})}, self.capture)

    def check(self, *args: str, env: dict[str, str] | None = None) -> CliRun:
        return self.cli(
            "check",
            "--broker",
            self.server.url,
            "--lock",
            str(self.lock),
            "--format",
            "json",
            *args,
            env=env,
        )

    def audit(self, *args: str) -> CliResult:
        return self.check("--hosts", "fx-*", "--timeout", AUDIT_TIMEOUT, *args).wait(240)

    # -- getting back to a known state -----------------------------------------------------

    def clean_queue(self, host: str) -> None:
        """Drop what waits for a dead worker, so its successor does not inherit a poison."""
        client = self.client()
        client.delete(queue(host))
        for tag, value in client.hscan_iter("unacked"):
            try:
                routing_key = json.loads(value)[2]
            except (ValueError, IndexError, TypeError):
                continue
            if routing_key == queue(host):
                client.hdel("unacked", tag)
                client.zrem("unacked_index", tag)

    def wait_fresh(self, names: set[str], since: float, workers: list[Worker]) -> None:
        client = self.client()

        def registered() -> bool:
            for worker in workers:
                if not worker.alive:
                    tail = "\n".join(worker.log_text().splitlines()[-15:])
                    raise AssertionError(f"worker {worker.host} exited early:\n{tail}")
            return names <= fresh_hosts(client, since)

        wait_for(f"{sorted(names)} to register", registered, timeout=300, every=0.25)

    def ready(self) -> None:
        """Redis up with AOF, every fleet worker alive, connected and answering correctly."""
        if not self.server.running:
            self.server.start()
            self.needs_probe = True
        self.server.set_persistence(True)
        self.state.clear_delays()
        for worker in self.workers.values():
            worker.signal_group(signal.SIGCONT)
        dead = [w for w in self.workers.values() if not w.alive]
        for worker in dead:
            self.clean_queue(worker.host)
            worker.start(self.replace_args())
        since = time.time()
        self.wait_fresh(set(self.workers), since, list(self.workers.values()))
        if not self.needs_probe:
            return
        # after a broker restart, a fresh heartbeat does not prove Celery's consumer is back
        last = None
        for _ in range(PROBE_ATTEMPTS):
            last = self.audit()
            if last.returncode == 1 and last.statuses == EXPECTED:
                self.needs_probe = False
                return
        assert last is not None
        raise AssertionError("the fleet did not recover after a broker restart\n" + last.describe())

    def stop_all(self) -> None:
        everyone = [*self.workers.values(), *self.extra_workers]
        for worker in everyone:  # signal all first: one slow shutdown must not add up
            worker.signal_group(signal.SIGCONT)
            worker.signal_group(signal.SIGTERM)
        for worker in everyone:
            worker.stop()
        self.server.terminate()


@pytest.fixture(scope="module")
def fx(tmp_path_factory: pytest.TempPathFactory, conda_channel: cf.Channel) -> Iterator[FaultFleet]:
    root = tmp_path_factory.mktemp("faults")
    clean, drift, arm = root / "clean", root / "drift", root / "arm"
    cf.install_prefix(conda_channel, cf.CLEAN_SPECS, clean)
    cf.install_prefix(conda_channel, cf.CLEAN_SPECS, drift)
    cf.replace_packages(conda_channel, ["numpy ==1.26.5"], drift)
    cf.install_prefix(aarch64_channel(root), ["openssl", "tzdata"], arm, platform="linux-aarch64")
    lock = root / "conda-lock.yml"
    lock.write_text(lockfiles.conda_lock({"linux-64": clean, "linux-aarch64": arm}))
    capture = Capture(root / "captured")
    server = RestartableRedis(root / "redis", random_secret("pw-"), capture)
    state = SourceState(root / "source-state")
    state.directory.mkdir()
    env = base_env(root, {"LOCKSTEP_FAULT_STATE": str(state.directory)})
    fleet = FaultFleet(
        root=root,
        server=server,
        capture=capture,
        state=state,
        source=write_slow_source(root / "slow-conda"),
        lock=lock,
        prefixes={"clean": clean, "drift": drift, "arm": arm},
        env=env,
    )
    try:
        server.start()
        for host in HOSTS:
            prefix = drift if EXPECTED[host] == "DRIFT" else clean
            fleet.workers[host] = fleet.make_worker(host, prefix)
        for worker in fleet.workers.values():
            worker.start()
        fleet.wait_fresh(set(HOSTS), 0.0, list(fleet.workers.values()))
        yield fleet
    finally:
        fleet.stop_all()


def assert_clean_exit(result: CliResult) -> None:
    assert "Traceback" not in result.stderr, result.describe()
    assert result.returncode == exit_code_for(result.report), result.describe()


def started_all(fx: FaultFleet, hosts: list[str], since: float) -> bool:
    return all(fx.state.since(h, "start", since) for h in hosts)


def ended_all(fx: FaultFleet, hosts: list[str], since: float) -> bool:
    return all(fx.state.since(h, "end", since) for h in hosts)


def answered(fx: FaultFleet, hosts: list[str], result: CliResult) -> list[str]:
    """Hosts whose source finished while the audit could still take their verdict."""
    return [h for h in hosts if fx.state.since(h, "end", result.started, result.ended - 2)]


# ------------------------------------------------------------------------------ scenario 1


def restart_mid_audit(fx: FaultFleet, *, aof: bool) -> CliResult:
    """Every host verifying, Redis SIGTERMed, verdicts finished while it is away, Redis back."""
    fx.state.set_delay(4)
    run = fx.check("--hosts", "fx-*", "--timeout", FAULT_TIMEOUT)
    wait_for("every host to start verifying", lambda: started_all(fx, HOSTS, run.started), 120)

    def while_down() -> None:
        wait_for(
            "every verification to finish while Redis is away",
            lambda: ended_all(fx, HOSTS, run.started),
            120,
        )

    fx.server.restart(aof=aof, down=while_down)
    fx.needs_probe = True
    result = run.wait(300)
    fx.state.clear_delays()
    return result


def test_redis_restart_with_aof_mid_audit(fx: FaultFleet) -> None:
    fx.ready()
    result = restart_mid_audit(fx, aof=True)
    figures = tally("Redis restarted mid-audit, AOF", result, EXPECTED, answered(fx, HOSTS, result))
    assert_clean_exit(result)
    assert result.statuses == EXPECTED, result.describe()
    assert result.returncode == 1
    assert (figures.lost, figures.duplicated, figures.wrong) == (0, 0, 0)


# ------------------------------------------------------------------------------ scenario 2


def test_redis_restart_without_aof_mid_audit_then_all(fx: FaultFleet) -> None:
    fx.ready()
    baseline = fx.check("--all", "--timeout", AUDIT_TIMEOUT).wait(240)  # lockstep sees 20 hosts
    assert_clean_exit(baseline)
    assert baseline.statuses == EXPECTED, baseline.describe()

    result = restart_mid_audit(fx, aof=False)
    lost_ok = {h: {"UNREACHABLE"} for h in HOSTS}
    figures = tally(
        "Redis restarted mid-audit, no persistence",
        result,
        EXPECTED,
        answered(fx, HOSTS, result),
        allowed=lost_ok,
    )
    assert_clean_exit(result)
    assert figures.wrong == 0, result.describe()
    assert set(result.statuses) == set(HOSTS)
    unreachable = [h for h, s in result.statuses.items() if s == "UNREACHABLE"]
    if unreachable:  # a lost verdict must be explained, host by host or for the audit
        hosts = {h["host"]: h for h in result.report["hosts"]}
        assert result.report.get("infrastructure_error") or all(
            hosts[h].get("error") for h in unreachable
        ), result.describe()
    if "DRIFT" in result.statuses.values():
        assert result.returncode == 1, result.describe()
    assert result.returncode != 0
    assert (figures.lost, figures.duplicated) == (0, 0), result.describe()

    # freeze every worker so none can re-register, then lose all data again: the registry
    # is empty and `--all` must say who is missing, never pass
    fx.ready()
    for worker in fx.workers.values():
        worker.signal_group(signal.SIGSTOP)
    try:
        fx.server.restart(aof=False)
        fx.needs_probe = True
        assert not registry(fx.client())
        empty = fx.check("--all", "--timeout", "10").wait(180)
    finally:
        for worker in fx.workers.values():
            worker.signal_group(signal.SIGCONT)
    report = empty.report if empty.stdout.strip() else {"hosts": []}
    listed = {h["host"]: h for h in report["hosts"]}
    tally(
        "`check --all` right after a restart without persistence",
        empty,
        dict.fromkeys(HOSTS, "UNREACHABLE"),
        [],
    )
    assert "Traceback" not in empty.stderr, empty.describe()
    assert empty.returncode == 3, empty.describe()
    for host in HOSTS:
        assert host in listed or host in empty.stderr, f"{host} not named\n{empty.describe()}"
        if host in listed:
            assert listed[host]["status"] == "UNREACHABLE", empty.describe()
    if empty.stdout.strip():
        assert empty.returncode == exit_code_for(report)


# ------------------------------------------------------------------------------ scenario 3


def test_sigkilled_workers_mid_verification(fx: FaultFleet) -> None:
    fx.ready()
    victims = [HOSTS[2], HOSTS[7]]  # 10 % of the fleet: one clean host, one drifted one
    fx.state.set_delay(6)
    run = fx.check("--hosts", "fx-*", "--timeout", "40")
    wait_for("the victims to start verifying", lambda: started_all(fx, victims, run.started), 120)
    for host in victims:
        fx.workers[host].kill()
    result = run.wait(300)
    fx.state.clear_delays()
    expected = {**EXPECTED, **dict.fromkeys(victims, "UNREACHABLE")}
    figures = tally(
        "10 % of workers SIGKILLed mid-verification", result, expected, answered(fx, HOSTS, result)
    )
    assert_clean_exit(result)
    assert result.statuses == expected, result.describe()
    assert result.returncode == 1  # drifted hosts among the survivors
    assert (figures.lost, figures.duplicated, figures.wrong) == (0, 0, 0)

    # the same fault where no survivor drifted: unverified, not drift and not OK
    fx.ready()
    clean = [h for h in HOSTS if EXPECTED[h] == "OK"][:5]
    fx.state.set_delay(6)
    run = fx.check(*[a for h in clean for a in ("--host", h)], "--timeout", "30")
    wait_for("the victim to start verifying", lambda: started_all(fx, clean[:1], run.started), 120)
    fx.workers[clean[0]].kill()
    result = run.wait(300)
    fx.state.clear_delays()
    expected = {**{h: "OK" for h in clean}, clean[0]: "UNREACHABLE"}
    figures = tally(
        "SIGKILLed worker among clean hosts", result, expected, answered(fx, clean, result)
    )
    assert_clean_exit(result)
    assert result.statuses == expected, result.describe()
    assert result.returncode == 3
    assert (figures.lost, figures.duplicated, figures.wrong) == (0, 0, 0)


# ------------------------------------------------------------------------------ scenario 4


def verdict_while_alive(
    fx: FaultFleet, worker: Worker, audit: str, timeout: float = 120
) -> dict[str, Any]:
    client = fx.client()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not worker.alive:
            tail = "\n".join(worker.log_text().splitlines()[-20:])
            raise AssertionError(f"worker {worker.host} died on a poison message:\n{tail}")
        try:
            return await_verdict(client, audit, timeout=1)
        except AssertionError:
            continue
    raise AssertionError(f"no verdict for audit {audit} from {worker.host} in {timeout:g} s")


def test_poison_messages_are_quarantined(fx: FaultFleet) -> None:
    fx.ready()
    host = "fx-01"
    worker = fx.workers[host]
    pid, rss_before = worker.pid, worker.peak_rss_mib()
    readable_shape, env_list = new_audit_id(), new_audit_id()
    locks = {"linux-64": "0" * 64}
    q = queue(host)
    poison = [
        ("non-JSON bytes", b"\xff\xfe{this is not json"),
        ("JSON array", b"[1, 2, 3]"),
        ("JSON object without the envelope", b'{"hello": "world"}'),
        ("body of the wrong shape", envelope(codec.encode_value({"not": "a task"}), q)),
        (
            "wrong shape, audit readable",
            envelope(codec.encode_value([[], verify_kwargs(readable_shape, locks)]), q),
        ),
        ("env as a list", envelope(task_body(verify_kwargs(env_list, locks, env=["prod"])), q)),
        ("msgpack object-count bomb", envelope(object_count_bomb(as_task=True), q)),
    ]
    client = fx.client()
    for _, item in poison:
        client.lpush(q, item)

    for audit in (readable_shape, env_list):
        verdict = verdict_while_alive(fx, worker, audit)
        assert verdict["host"] == host and verdict["status"] == "ERROR", verdict
        assert verdict.get("error"), verdict
    wait_for("the poison to be consumed", lambda: client.llen(q) == 0 or not worker.alive, 120)
    assert worker.alive, worker.log_text()[-3000:]

    result = fx.audit()
    figures = tally(
        "poison messages, then a normal audit", result, EXPECTED, answered(fx, HOSTS, result)
    )
    assert_clean_exit(result)
    assert result.statuses == EXPECTED, result.describe()
    assert result.returncode == 1
    assert (figures.lost, figures.duplicated, figures.wrong) == (0, 0, 0)
    assert worker.alive and worker.pid == pid and worker.starts == 1
    dead_letters = client.llen(f"lockstep:deadletter:{host}")
    # six cannot be read as a task; the list-valued env may be quarantined too or answered
    assert dead_letters in (6, 7), dead_letters
    shown = fx.cli(
        "dead-letters", "--broker", fx.server.url, "--host", host, "--format", "json"
    ).wait(60)
    assert shown.returncode == 0, shown.describe()
    assert host in shown.stdout and "Traceback" not in shown.stderr
    assert worker.peak_rss_mib() - rss_before < RSS_BUDGET_MIB


# ------------------------------------------------------------------------------ scenario 5


def test_duplicate_hostname_is_refused(fx: FaultFleet) -> None:
    fx.ready()
    host = "fx-04"  # clean; the impostor serves the drifted prefix, so sharing would flap
    before = registry(fx.client())[host]
    impostor = fx.make_worker(host, fx.prefixes["drift"])
    fx.extra_workers.append(impostor)
    impostor.start()
    try:
        wait_for("the second worker to give up", lambda: not impostor.alive, 60, every=0.25)
    finally:
        impostor.stop()
    text = impostor.log_text()
    assert impostor.proc is not None and impostor.proc.returncode not in (0, None), text[-3000:]
    assert "Traceback" not in text
    assert any(host in line and "error" in line.lower() for line in text.splitlines()), text
    assert fx.workers[host].alive
    after = registry(fx.client())[host]
    assert after.get("instance") == before.get("instance") and after.get("environments") == {
        "prod": str(fx.prefixes["clean"])
    }
    results = [fx.check("--host", host, "--timeout", AUDIT_TIMEOUT).wait(240) for _ in range(3)]
    for number, result in enumerate(results):
        tally(f"duplicate host name, audit {number + 1}", result, {host: "OK"}, [host])
        assert_clean_exit(result)
        assert result.statuses == {host: "OK"}, result.describe()
        assert result.returncode == 0


# ------------------------------------------------------------------------------ scenario 6


def test_host_registering_after_the_check_started(fx: FaultFleet) -> None:
    fx.ready()
    late = fx.make_worker("late-arm", fx.prefixes["arm"])
    fx.extra_workers.append(late)
    client = fx.client()
    assert "late-arm" not in registry(client)
    run = fx.check("--host", "late-arm", "--host", "fx-00", "--timeout", FAULT_TIMEOUT)
    try:
        wait_for(
            "the task for the unregistered host to be published",
            lambda: client.llen(queue("late-arm")) >= 1 or not run.running(),
            120,
        )
        late.start()
        result = run.wait(300)
    finally:
        late.stop()
    figures = tally(
        "host registering after the check started",
        result,
        {"late-arm": "OK", "fx-00": "OK"},
        [h for h in ("late-arm", "fx-00") if fx.state.since(h, "end", result.started)],
    )
    assert_clean_exit(result)
    hosts = {h["host"]: h for h in result.report["hosts"]}
    assert hosts["fx-00"]["status"] == "OK"
    entry = registry(client).get("late-arm", {})
    came_too_late = float(entry.get("started_at") or 0) >= result.ended or not entry
    if came_too_late:
        assert hosts["late-arm"]["status"] == "UNREACHABLE" and hosts["late-arm"]["error"]
    else:  # judged against its own linux-aarch64 section, not this machine's linux-64
        assert hosts["late-arm"]["status"] == "OK", result.describe()
        assert hosts["late-arm"]["platform"] == "linux-aarch64"
        assert result.returncode == 0
    assert (figures.lost, figures.duplicated) == (0, 0)
    forget = fx.cli("hosts", "--broker", fx.server.url, "--forget", "late-arm").wait(60)
    assert forget.returncode == 0, forget.describe()


# ------------------------------------------------------------------------------ scenario 7


def rogue(client: redis.Redis, payloads: dict[str, bytes], stop: threading.Event) -> None:
    """Answers each fake host's task with its bomb, as a hostile broker writer would."""
    queues = [queue(h) for h in payloads]
    while not stop.is_set():
        item: Any = client.brpop(queues, timeout=1)
        if item is None:
            continue
        host = item[0].decode()[len(QUEUE_PREFIX) :]
        audit = audit_of(item[1])
        if audit is not None:
            push_reply(client, audit, host, payloads[host])


def test_bomb_payloads(fx: FaultFleet) -> None:
    from worker.registry import HostInfo, register

    fx.ready()
    client = fx.client()

    # a stored lock of a few KiB that inflates to 128 MiB, named by a task with its digest
    victim = fx.workers["fx-05"]
    rss_before = victim.peak_rss_mib()
    bomb = inflating_payload(128 * 1024 * 1024)
    digest = hashlib.sha256(bomb).hexdigest()
    client.set(f"lockstep:lock:{digest}", bomb, ex=3600)
    for _ in range(2):  # the second time the failure must be remembered, not decoded again
        audit = new_audit_id()
        locks = dict.fromkeys(("linux-64", "linux-aarch64", "*"), digest)
        client.lpush(
            queue("fx-05"), envelope(task_body(verify_kwargs(audit, locks)), queue("fx-05"))
        )
        verdict = verdict_while_alive(fx, victim, audit)
        assert verdict["status"] == "ERROR" and digest[:12] in (verdict.get("error") or ""), verdict
    assert victim.peak_rss_mib() - rss_before < RSS_BUDGET_MIB

    # verdict bombs on the reply list of a real audit, from hosts a rogue answers for
    baseline = fx.audit()
    assert baseline.statuses == EXPECTED, baseline.describe()
    payloads = {
        "zz-bomb-big": codec.MAGIC + b"\x00" * (128 * 1024 * 1024),
        "zz-bomb-inflate": inflating_payload(1024 * 1024 * 1024),
        "zz-bomb-objects": object_count_bomb(),
    }
    for host in payloads:
        register(client, HostInfo(host=host, platform="linux-64", queue=queue(host)))
    stop = threading.Event()
    thread = threading.Thread(target=rogue, args=(fx.client(), payloads, stop), daemon=True)
    thread.start()
    try:
        result = fx.check(
            "--hosts",
            "fx-*",
            *[a for h in payloads for a in ("--host", h)],
            "--host",
            SILENT,  # keeps the producer waiting, so its memory is sampled past every bomb
            "--timeout",
            "30",
        ).wait(300)
    finally:
        stop.set()
        thread.join(10)
    expected = {**EXPECTED, **dict.fromkeys(payloads, "ERROR"), SILENT: "UNREACHABLE"}
    figures = tally(
        "bomb payloads (lock and verdicts)", result, expected, answered(fx, HOSTS, result)
    )
    forget = fx.cli(
        "hosts", "--broker", fx.server.url, *[a for h in payloads for a in ("--forget", h)]
    ).wait(60)
    assert_clean_exit(result)
    assert result.statuses == expected, result.describe()
    assert result.returncode == 1
    assert (figures.lost, figures.duplicated, figures.wrong) == (0, 0, 0)
    assert result.peak_rss_mib - baseline.peak_rss_mib < 100, (
        result.peak_rss_mib,
        baseline.peak_rss_mib,
    )
    assert forget.returncode == 0, forget.describe()


# ------------------------------------------------------------------------------ scenario 8


def fleet_key(fx: FaultFleet) -> tuple[str, Path]:
    key_file = fx.root / "fleet.key"
    if not key_file.exists():
        key_file.write_text(random_secret("fleet-key-") + "\n")
        key_file.chmod(0o600)
    return key_file.read_text().strip(), key_file


def test_signed_fleet_with_broker_from_the_environment(fx: FaultFleet) -> None:
    fx.ready()
    _, key_file = fleet_key(fx)
    secret_env = {"LOCKSTEP_BROKER": fx.server.url, "LOCKSTEP_FLEET_KEY_FILE": str(key_file)}
    signed = {
        "fk-ok": fx.make_worker(
            "fk-ok", fx.prefixes["clean"], env=secret_env, broker_in_argv=False
        ),
        "fk-drift": fx.make_worker(
            "fk-drift", fx.prefixes["drift"], env=secret_env, broker_in_argv=False
        ),
    }
    fx.extra_workers += signed.values()
    for worker in signed.values():
        worker.start()
    try:
        fx.wait_fresh(set(signed), 0.0, list(signed.values()))
        for worker in signed.values():  # LOCKSTEP_BROKER keeps the password out of `ps`
            cmdline = Path(f"/proc/{worker.pid}/cmdline").read_bytes()
            assert fx.server.password.encode() not in cmdline
        result = fx.cli(
            "check",
            "--lock",
            str(fx.lock),
            "--hosts",
            "fk-*",
            "--format",
            "json",
            "--timeout",
            AUDIT_TIMEOUT,
            env=secret_env,
        ).wait(240)
        tally(
            "signed fleet, broker from LOCKSTEP_BROKER",
            result,
            {"fk-ok": "OK", "fk-drift": "DRIFT"},
            list(signed),
        )
        assert_clean_exit(result)
        assert result.statuses == {"fk-ok": "OK", "fk-drift": "DRIFT"}, result.describe()
        assert result.returncode == 1
    finally:
        for worker in signed.values():
            worker.stop()


def test_no_credential_in_any_output(fx: FaultFleet) -> None:
    """Last in the module: greps what every process of every scenario above printed."""
    fx.ready()
    key, _ = fleet_key(fx)
    pw, port = fx.server.password, fx.server.port
    lock = str(fx.lock)
    attempts = [
        ("check", "--broker", f"redis:/:{pw}@127.0.0.1:{port}/0", "--lock", lock, "--all"),
        ("check", "--broker", f"redis://127.0.0.1:1/0?password={pw}", "--lock", lock, "--all"),
        ("check", "--broker", f"redis://:{pw}@127.0.0.1:1/0", "--lock", lock, "--all"),
        ("hosts", "--broker", fx.server.url),
        ("hosts", "--broker", fx.server.url, "--format", "json"),
        ("check", "--broker", f"redis://:{pw}@127.0.0.1:badport/0", "--lock", lock, "--all"),
        ("worker", "--broker", f"redis:/:{pw}@127.0.0.1:{port}/0", "-p", lock),
        (
            "worker",
            "--broker",
            f"redis://:{pw}@127.0.0.1:badport/0",
            "--hostname",
            "zz",
            "-p",
            lock,
        ),
    ]
    for args in attempts:
        outcome = fx.cli(*args).wait(120)
        assert "Traceback" not in outcome.stderr, outcome.describe()
        if args[0] != "hosts":
            assert outcome.returncode in (2, 4), outcome.describe()
    assert fx.capture.grep(pw) == []
    assert fx.capture.grep(key) == []

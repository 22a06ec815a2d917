"""The `lockstep` command line.

Module-level imports stay light on purpose: `lockstep check --local` runs before every
deploy and must not pay for importing Celery, so the fleet parts are imported inside the
commands that need them.
"""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from producer.exit_codes import EXIT_INFRA, EXIT_USAGE
from producer.options import REFRESH, TIMEOUT
from producer.outcome import (
    Failure,
    OutputClosed,
    debugging,
    exit_code_for_exception,
    exit_code_for_result,
)
from producer.outputs import FORMATS, PairedOutputCommand, destinations, emit
from worker import __version__
from worker.snapshot.interface import SnapshotError

# lockstep loads no pydantic plugins; looking for them scans every installed distribution's
# metadata, a sizeable share of a local check's start-up.
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")

if TYPE_CHECKING:
    from producer.fleet_cli import FleetRequest
    from producer.report.model import Report
    from worker.broker import BrokerURL
    from worker.models import Lock
    from worker.snapshot.interface import SnapshotSource

F = TypeVar("F", bound=Callable[..., Any])

SOURCE_HELP = (
    "How to read the environment: 'conda-meta' (default; reads conda-meta/*.json directly, "
    "read-only and fast), or 'conda', 'mamba', 'micromamba' or a path to one of them, to run "
    "`<tool> list --json`. Note that `conda list` itself can delete records (conda#14423)."
)

CHECK_HELP = """Verify environments against a lock.

\b
Locally, with no broker at all (the environment of this shell, or -n / -p):
  lockstep check --local --lock conda-lock.yml
  lockstep check --local -p /opt/conda/envs/prod --lock pixi.lock --environment prod

\b
Across the fleet, through Redis (run `lockstep worker` on each host first):
  lockstep check --broker redis://queue:6379/0 --lock conda-lock.yml --hosts 'web-*'
  lockstep check --broker ... --lock conda-lock.yml --all -f junit -o report.xml -f table
Hosts that do not answer within --timeout are UNREACHABLE; Ctrl-C reports what arrived.

Lock formats are detected from the content: conda-lock.yml, @EXPLICIT files,
environment.yml (constraints only: extras are reported with --strict), pixi.lock v6/v7,
and golden-host files (`conda list --json`, `conda list --export`, `conda env export`).

Keep the broker's password out of `ps`: set LOCKSTEP_BROKER (e.g. from a systemd
EnvironmentFile) rather than passing --broker on the command line.

\b
Exit codes:
  0  every targeted environment verified and matches the lock
  1  drift found (only ever when the report lists a finding)
  2  usage error or bad input (a broken lock, a prefix that is not an environment)
  3  no drift found, but some hosts could not be verified
  4  infrastructure failure (broker unreachable, or lost beyond retry)
  5  internal error: a bug in lockstep (one line; the traceback with --debug)
"""

EXIT_HELP = """\b
Exit codes (every command):
  0  ok: everything targeted verified and clean
  1  drift found: only ever when a finding was produced
  2  usage error or bad input
  3  no drift found, but some hosts could not be verified
  4  infrastructure failure: broker unreachable or lost beyond retry
  5  internal error (a bug in lockstep): one line on stderr; the traceback with
     `lockstep --debug ...` or LOCKSTEP_DEBUG=1
  130 interrupted (Ctrl-C) before there was anything to report
"""


def report_out(ctx: click.Context, report: Report) -> None:
    """Render the report everywhere asked; an unwritable file is a usage error (exit 2)."""
    from producer.outputs import OutputError

    try:
        emit(report, destinations(ctx))
    except OutputError as exc:
        fail(str(exc))


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """User mistakes end here; LockstepGroup prints the one line and exits with `code`."""
    raise Failure(message, code)


def make_source(source: str, timeout: float = 60.0) -> SnapshotSource:
    if source == "conda-meta":
        from worker.snapshot.conda_meta import CondaMetaSource

        return CondaMetaSource()
    from worker.snapshot.conda_cli import CondaCliSource

    return CondaCliSource(source, timeout=timeout)


def resolve_prefix(prefix: str | None, name: str | None) -> Path:
    from worker import envs

    if prefix and name:
        fail("pass either -p/--prefix or -n/--name, not both")
    try:
        if prefix:
            return Path(prefix).expanduser()
        if name:
            return envs.resolve_name(name)
        return envs.current_prefix()
    except SnapshotError as exc:
        fail(str(exc))


def broker_options(*, required: bool) -> Callable[[F], F]:
    """--broker and --master-name, spelled and documented once for every fleet command."""

    def apply(func: F) -> F:
        func = click.option(
            "--master-name",
            envvar="LOCKSTEP_SENTINEL_MASTER",
            help="Sentinel master name (default: mymaster) [env: LOCKSTEP_SENTINEL_MASTER].",
        )(func)
        return click.option(
            "--broker",
            envvar="LOCKSTEP_BROKER",
            required=required,
            metavar="URL",
            help="Redis broker: redis://, rediss:// (certificates verified), "
            "redis+socket:///path or sentinel://h1:26379;sentinel://h2:26379 "
            "[env: LOCKSTEP_BROKER]. Prefer LOCKSTEP_BROKER (or the worker's config "
            "file): a password given here is visible to every user in `ps`.",
        )(func)

    return apply


def fleet_key_option(func: F) -> F:
    """The opt-in shared key; a file or an environment variable, never a value in `ps`."""
    return click.option(
        "--fleet-key-file",
        type=click.Path(dir_okay=False, path_type=Path),
        envvar="LOCKSTEP_FLEET_KEY_FILE",
        help="Shared fleet key (at least 16 bytes): tasks and verdicts are signed with it and "
        "unsigned ones refused [env: LOCKSTEP_FLEET_KEY_FILE; or the key itself in "
        "LOCKSTEP_FLEET_KEY]. Without a key, anyone who can write to the broker can forge "
        "a verdict.",
    )(func)


_DEBUG: ContextVar[bool] = ContextVar("lockstep_debug", default=False)


class LockstepGroup(click.Group):
    """Every command ends in producer.outcome: one exit-code mapping, no stray traceback.

    Commands return a Report (or a code) or raise; click runs without standalone mode so
    that nothing but this class turns the result into the process's exit status.
    """

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> int:
        token = _DEBUG.set(False)
        try:
            result = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
            code = exit_code_for_result(result)
        except BaseException as exc:  # the one place every way of ending is mapped
            code = exit_code_for_exception(exc, debug=debugging(_DEBUG.get()))
        finally:
            _DEBUG.reset(token)
        if standalone_mode:
            sys.exit(code)
        return code

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except OSError as exc:
            if exc.errno == errno.EPIPE:  # click itself would exit 1 here: drift, a lie
                raise OutputClosed(str(exc)) from exc
            raise


def _set_debug(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        _DEBUG.set(True)


@click.group(
    cls=LockstepGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog=EXIT_HELP,
)
@click.version_option(__version__, prog_name="lockstep")
@click.option(
    "--debug",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_set_debug,
    help="Print the traceback of an internal error (also: LOCKSTEP_DEBUG=1).",
)
def main() -> None:
    """Keep every host of a fleet in lockstep with its expected conda lock.

    Start with `lockstep check --help`.
    """


@main.command(cls=PairedOutputCommand, help=CHECK_HELP)
@click.option(
    "--lock",
    "lock_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="The lock to verify against.",
)
@click.option(
    "--local", is_flag=True, help="Verify an environment on this machine, without any broker."
)
@click.option("-p", "--prefix", help="Environment prefix to verify (with --local).")
@click.option("-n", "--name", "env_name", help="Environment name to verify (with --local).")
@click.option("--source", default="conda-meta", show_default=True, help=SOURCE_HELP)
@click.option(
    "--lock-format",
    type=click.Choice(["auto", "conda-lock", "explicit", "environment-yml", "pixi", "golden"]),
    default="auto",
    show_default=True,
    help="Force the lock format instead of detecting it.",
)
@click.option(
    "--platform",
    help="Which platform section of the lock to use "
    "(default: the environment's own subdir, else this machine's).",
)
@click.option("--environment", "lock_env", help="pixi.lock environment (default: 'default').")
@click.option(
    "--strict",
    is_flag=True,
    help="With a spec file (environment.yml), also report packages it does not name.",
)
@click.option(
    "--ignore",
    multiple=True,
    metavar="NAME",
    help="Skip this package entirely (repeatable), e.g. one you let float.",
)
@click.option(
    "--ignore-build",
    multiple=True,
    metavar="NAME",
    help="Check this package's version but not its build or hash (repeatable).",
)
@click.option(
    "-f",
    "--format",
    "formats",
    multiple=True,
    type=click.Choice(FORMATS),
    help="Report format (repeatable; default: table). Each --output after a "
    "--format writes that format to a file.",
)
@click.option(
    "-o",
    "--output",
    "outputs",
    multiple=True,
    type=click.Path(dir_okay=False),
    help="File for the preceding --format (repeatable).",
)
@broker_options(required=False)
@fleet_key_option
@click.option(
    "--hosts",
    multiple=True,
    metavar="PATTERN",
    help="Hosts to verify: names or globs against the registry, comma-separated "
    "or repeated (e.g. 'web-*').",
)
@click.option(
    "--host", "single_hosts", multiple=True, metavar="NAME", help="One remote host (repeatable)."
)
@click.option("--all", "all_hosts", is_flag=True, help="Every registered host.")
@click.option(
    "--group",
    "groups",
    multiple=True,
    metavar="G",
    help="A group from the inventory file (repeatable).",
)
@click.option(
    "--inventory",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="LOCKSTEP_INVENTORY",
    help="Inventory (TOML or YAML) with groups.",
)
@click.option(
    "--env",
    "fleet_env",
    metavar="NAME",
    help="Which of each worker's allowed environments (default: its default).",
)
@click.option(
    "--timeout",
    type=TIMEOUT,
    default=None,
    help="Fleet: seconds to collect verdicts before calling a host UNREACHABLE "
    "(default 30). Local: seconds to wait for a conda CLI source (default 60).",
)
def check(
    lock_path: str,
    local: bool,
    prefix: str | None,
    env_name: str | None,
    source: str,
    lock_format: str,
    platform: str | None,
    lock_env: str | None,
    strict: bool,
    ignore: tuple[str, ...],
    ignore_build: tuple[str, ...],
    formats: tuple[str, ...],
    outputs: tuple[str, ...],
    broker: str | None,
    master_name: str | None,
    fleet_key_file: Path | None,
    hosts: tuple[str, ...],
    single_hosts: tuple[str, ...],
    all_hosts: bool,
    groups: tuple[str, ...],
    inventory: Path | None,
    fleet_env: str | None,
    timeout: float | None,
) -> Report:
    ctx = click.get_current_context()
    from producer.outputs import OutputError, check_destinations

    try:
        check_destinations(destinations(ctx))
    except OutputError as exc:
        fail(str(exc))
    if not local:
        if not broker:
            fail(
                "no broker configured: pass --broker URL (or set LOCKSTEP_BROKER), "
                "or --local to verify this machine"
            )
        from producer.fleet_cli import FleetRequest, parse_broker
        from worker.signing import load_fleet_key

        return _fleet(
            ctx,
            FleetRequest(
                broker=parse_broker(broker, master_name),
                lock_path=Path(lock_path),
                hosts=hosts + single_hosts,
                all_hosts=all_hosts,
                groups=groups,
                inventory=inventory,
                env=fleet_env,
                timeout=30.0 if timeout is None else timeout,
                lock_format=None if lock_format == "auto" else lock_format,
                lock_environment=lock_env,
                platform=platform,
                options={
                    "strict": strict,
                    "ignore": list(ignore),
                    "ignore_build": list(ignore_build),
                },
                key=load_fleet_key(fleet_key_file),
            ),
        )
    if timeout is None:
        timeout = 60.0
    import time

    from producer.report.model import build_report, lock_info
    from worker.compare import CompareOptions
    from worker.verify import judge, take_snapshot

    started = time.perf_counter()
    target = resolve_prefix(prefix, env_name)
    snap = take_snapshot(make_source(source, timeout), target)
    if platform is None and not isinstance(snap, SnapshotError):
        platform = snap.platform  # pick the lock section this environment was built for
    lock = _load_lock(Path(lock_path), lock_format, platform, lock_env)
    options = CompareOptions(
        strict=strict, ignore=frozenset(ignore), ignore_build=frozenset(ignore_build)
    )
    host_report = judge(snap, lock, options, environment=env_name, started=started)
    host_report.prefix = str(target)
    report = build_report(lock_info(lock), [host_report])
    report_out(ctx, report)
    if host_report.error:
        fail(host_report.error)
    return report


def _fleet(ctx: click.Context, request: FleetRequest) -> Report:
    """Broker, target and lock errors go up to producer.outcome, which maps them (4 or 2)."""
    from producer.fleet_cli import run_fleet_check

    report = run_fleet_check(request)
    report_out(ctx, report)
    return report


def _prefix_platform(prefix: Path) -> str | None:
    """The subdir a prefix was built for, so a lock's matching section is picked by default."""
    from worker.snapshot.conda_meta import CondaMetaSource

    try:
        return CondaMetaSource().snapshot(prefix).platform
    except SnapshotError:
        return None


def _load_lock(path: Path, fmt: str, platform: str | None, environment: str | None) -> Lock:
    from producer.locks.detect import load_lock
    from producer.locks.interface import LockError

    try:
        return load_lock(
            path, fmt=None if fmt == "auto" else fmt, platform=platform, environment=environment
        )
    except LockError as exc:
        fail(str(exc))


@main.command()
@click.option("-p", "--prefix", help="Environment prefix (default: the active environment).")
@click.option("-n", "--name", "env_name", help="Environment name.")
@click.option("--source", default="conda-meta", show_default=True, help=SOURCE_HELP)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["conda-json", "json", "export"]),
    default="conda-json",
    show_default=True,
    help="conda-json: byte for byte what `conda list --json` prints (usable as a "
    "golden-host lock); json: lockstep's own snapshot with hashes and channels; "
    "export: `conda list --export` lines.",
)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write to a file.")
def snapshot(
    prefix: str | None, env_name: str | None, source: str, fmt: str, output: str | None
) -> None:
    """Print what an environment holds, read-only.

    `lockstep snapshot -p /opt/conda/envs/prod > golden.json` on a known-good host gives a
    lock that `lockstep check --lock golden.json` verifies other hosts against.
    """
    from worker.snapshot import conda_json

    target = resolve_prefix(prefix, env_name)
    try:
        snap = make_source(source).snapshot(target)
    except SnapshotError as exc:
        fail(str(exc))
    for warning in snap.warnings:
        click.echo(f"lockstep: warning: {warning}", err=True)
    if fmt == "conda-json":
        text = conda_json.render(snap)
    elif fmt == "json":
        text = snap.model_dump_json(indent=2) + "\n"
    else:
        lines = [f"# platform: {snap.platform or ''}"]
        lines += [
            f"{e['name']}={e['version']}={e['build_string']}"
            for e in conda_json.conda_list_entries(snap)
        ]
        text = "\n".join(lines) + "\n"
    if output:
        try:
            Path(output).write_text(text, encoding="utf-8")
        except OSError as exc:
            fail(f"{output}: cannot write: {exc.strerror or exc}")
    else:
        click.echo(text, nl=False)


WORKER_HELP = """Serve verification requests for this host from its own queue.

The worker only ever reads the environments allowed here; a request naming any other
environment gets an ERROR verdict. It never modifies an environment.

\b
  lockstep worker --broker redis://queue:6379/0 -n prod
  lockstep worker --broker ... -p prod=/opt/conda/envs/prod -p /opt/conda/envs/ml
  LOCKSTEP_BROKER=redis://:pw@queue:6379/0 lockstep worker --config /etc/lockstep/worker.toml

The broker comes from --broker, else LOCKSTEP_BROKER, else the config file's
`broker = "..."` key. With a password, use LOCKSTEP_BROKER (systemd EnvironmentFile=) or the
config file (mode 0600): a --broker value is visible to every user in `ps`.

A second worker for a host name that is already served refuses to start; --replace takes
the name over (the old instance's late verdicts are then recognised as stale).
"""


@main.command(help=WORKER_HELP)
@broker_options(required=False)
@fleet_key_option
@click.option(
    "--replace",
    is_flag=True,
    help="Take over a host name that another live worker serves (default: refuse to start).",
)
@click.option(
    "--hostname",
    help="Name this host registers and is targeted under (default: the machine's host name).",
)
@click.option(
    "-n",
    "--name",
    "names",
    multiple=True,
    metavar="NAME",
    help="Allow verifying the conda environment NAME (repeatable).",
)
@click.option(
    "-p",
    "--prefix",
    "prefixes",
    multiple=True,
    metavar="[NAME=]PATH",
    help="Allow verifying the environment at PATH, called NAME (default: the "
    "directory's name) (repeatable).",
)
@click.option(
    "--default-env",
    help="Environment verified when a check names none (default: the first allowed).",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="TOML file: host, default_environment, source, broker, fleet_key_file, "
    "refresh_seconds, source_timeout, [environments] name = path.",
)
@click.option("--source", default=None, help=SOURCE_HELP)
@click.option("--platform", help="Subdir to register (default: the default environment's).")
@click.option(
    "--refresh",
    type=REFRESH,
    default=None,
    help="Seconds between registry refreshes, at least 1 (default 15).",
)
@click.option("--loglevel", default="WARNING", show_default=True)
def worker(
    broker: str | None,
    master_name: str | None,
    fleet_key_file: Path | None,
    replace: bool,
    hostname: str | None,
    names: tuple[str, ...],
    prefixes: tuple[str, ...],
    default_env: str | None,
    config_path: Path | None,
    source: str | None,
    platform: str | None,
    refresh: float | None,
    loglevel: str,
) -> None:
    from producer.fleet_cli import parse_broker
    from worker import envs
    from worker.app import run_worker
    from worker.config import WorkerConfig, load_config, where_is
    from worker.signing import load_fleet_key

    config = load_config(config_path, check_default=False) if config_path else WorkerConfig()
    broker = broker or config.broker
    if not broker:
        fail("no broker configured: set LOCKSTEP_BROKER, `broker = ...` in --config, or --broker")
    url = parse_broker(broker, master_name)
    _warn_if_password_on_command_line(url)
    key = load_fleet_key(fleet_key_file or config.fleet_key_file)
    environments = dict(config.environments)
    for name in names:
        try:
            environments[name] = str(envs.resolve_name(name))
        except SnapshotError as exc:
            fail(str(exc))
    for spec in prefixes:
        name, sep, path = spec.partition("=")
        if not sep:
            name, path = Path(spec).name, spec
        environments[name] = str(Path(path).expanduser().resolve())
    if not environments:
        fail("no environment to serve: pass -n NAME, -p [NAME=]PATH or --config FILE")
    updates: dict[str, object] = {"environments": environments}
    if hostname:
        updates["host"] = hostname
    if default_env:
        if default_env not in environments:
            fail(f"--default-env {default_env!r} is not one of: {', '.join(environments)}")
        updates["default_environment"] = default_env
    if source:
        updates["source"] = source
    if refresh:
        updates["refresh_seconds"] = refresh
    config = config.model_copy(update=updates)
    if config_path and not default_env:
        config.check_default(where_is(config_path, "default_environment"))
    for problem in config.check():
        click.echo(f"lockstep: warning: {problem}", err=True)
    _, default_prefix = config.prefix_for(None)
    subdir = platform or _prefix_platform(default_prefix) or _host_platform()
    signed = f", tasks signed with key {key.kid}" if key else ""
    click.echo(
        f"lockstep worker {config.host} ({subdir}) serving "
        f"{', '.join(environments)} via {url.masked()}{signed}",
        err=True,
    )
    import inspect

    wanted: dict[str, Any] = {"replace": replace, "key": key}
    accepted = inspect.signature(run_worker).parameters  # until contract item 3 lands in app.py
    extra = {k: v for k, v in wanted.items() if k in accepted}
    run_worker(url, config, subdir, loglevel=loglevel.upper(), **extra)


def _warn_if_password_on_command_line(url: BrokerURL) -> None:
    """A password in --broker is readable by every local user in `ps`: say how to avoid it."""
    ctx = click.get_current_context()
    if ctx.get_parameter_source("broker") is not click.core.ParameterSource.COMMANDLINE:
        return
    if url.masked() != url.url:
        click.echo(
            "lockstep: warning: the broker URL on the command line holds a credential that "
            "`ps` shows to every user; use LOCKSTEP_BROKER or `broker = ...` in --config",
            err=True,
        )


def _host_platform() -> str:
    import rattler

    return str(rattler.Platform.current())


@main.command()
@broker_options(required=True)
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
)
@click.option(
    "--forget",
    multiple=True,
    metavar="NAME",
    help="Remove a decommissioned host from the registry (repeatable); its queue and dead "
    "letters are dropped too.",
)
def hosts(broker: str, master_name: str | None, fmt: str, forget: tuple[str, ...]) -> None:
    """List registered workers: platform, environments, version, last seen, instance,
    and how many messages each one refused (see `lockstep dead-letters`).

    A host that is gone for good stays listed (and `--all` keeps targeting it, as
    UNREACHABLE) until it is forgotten with `--forget NAME`.
    """
    from producer.fleet_cli import parse_broker
    from producer.hosts_cmd import forget_hosts, hosts_table
    from worker.broker import BrokerError

    url = parse_broker(broker, master_name)
    try:
        if forget:
            for name in forget_hosts(url, forget):
                click.echo(f"lockstep: forgot {name}", err=True)
        click.echo(hosts_table(url, fmt), nl=False)
    except BrokerError as exc:
        fail(str(exc), EXIT_INFRA)


@main.command("dead-letters")
@broker_options(required=True)
@click.option(
    "--host", "host_names", multiple=True, metavar="NAME", help="Only this host (repeatable)."
)
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
)
@click.option("--clear", is_flag=True, help="Delete the listed dead letters after showing them.")
def dead_letters_cmd(
    broker: str, master_name: str | None, host_names: tuple[str, ...], fmt: str, clear: bool
) -> None:
    """Show the messages workers refused: why, when, which audit, and their first bytes.

    A worker acknowledges a message it cannot read (not JSON, the wrong shape, an unknown
    task, a missing or bad signature), keeps it here (bounded: the newest 1,000 per host)
    and keeps serving; the audit it belonged to, when readable, gets an ERROR verdict.
    """
    from producer.fleet_cli import parse_broker
    from producer.hosts_cmd import dead_letters
    from worker.broker import BrokerError

    url = parse_broker(broker, master_name)
    try:
        click.echo(dead_letters(url, host_names, fmt, clear), nl=False)
    except BrokerError as exc:
        fail(str(exc), EXIT_INFRA)


@main.command()
@click.option(
    "--examples",
    "examples_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder with envs/ and conda-lock.yml (default: the examples lockstep ships).",
)
@click.option(
    "--timeout",
    type=TIMEOUT,
    default=5.0,
    show_default=True,
    help="Seconds to wait for verdicts; the host without a worker waits this long.",
)
def demo(examples_dir: Path | None, timeout: float) -> int:
    """Run a whole fleet audit on this machine, with nothing installed but lockstep.

    Starts a private Redis server, three `lockstep worker` processes serving the example
    environments (one of them drifted), audits them plus one host that has no worker,
    prints the report, and removes every process and file it made — also on Ctrl-C.
    """
    from producer.demo import DemoError, ExamplesMissing, run_demo

    try:
        return run_demo(examples_dir, timeout)
    except ExamplesMissing as exc:
        fail(str(exc))
    except DemoError as exc:
        fail(str(exc), EXIT_INFRA)


if __name__ == "__main__":  # pragma: no cover
    main()

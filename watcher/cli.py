"""Thin CLI: parse arguments, load config, call the core, map errors to exit codes.

Exit codes: 0 the command ran (findings or not); 1 internal error (a bug: rerun with --debug);
2 usage or configuration error; 3 the data source failed (unreachable, bad answer, metric or
label missing).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from watcher import __version__
from watcher.config import FLAG_NAMES, Config, load_config, with_flags
from watcher.detect import scanned
from watcher.errors import EXIT_DELIVERY, EXIT_DRILL_MISSED, EXIT_OK, ConfigError, DnswatchError
from watcher.evidence import Evidence
from watcher.findings import Scanned
from watcher.progress import QUIET, Progress
from watcher.render import as_json, as_text

EPILOG = """exit codes: 0 ran (findings or not), 1 internal error, 2 usage or configuration
error, 3 data source failed, 4 state database unusable (run/serve), 5 every delivery failed (run;
they stay pending), 6 drill --check: the last drill was not seen end to end. Errors are one line
on stderr; --debug adds the traceback."""


def parse_time(value: str, flag: str = "--at") -> float:
    """RFC 3339 (`2026-05-28T20:00:00Z`) or Unix seconds."""
    text = value.strip()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ConfigError(f"{flag}: not RFC 3339 or Unix seconds: {value!r}") from None
    if parsed.tzinfo is None:
        raise ConfigError(f"{flag}: give a time zone (e.g. Z): {value!r}")
    return parsed.timestamp()


def _add_relay_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--relay",
        metavar="ADDRESS",
        help="read DNS flows from Hubble Relay's GetFlows (e.g. hubble-relay.kube-system:80): "
        "every node's, filtered on the server; without --follow, what it holds of the long "
        "window",
    )
    p.add_argument("--tls", action="store_true", help="--relay: connect with TLS")
    p.add_argument("--tls-ca", metavar="FILE", help="--relay --tls: CA bundle for Relay")
    p.add_argument(
        "--tls-cert", metavar="FILE", help="--relay --tls: client certificate (Relay's mTLS)"
    )
    p.add_argument("--tls-key", metavar="FILE", help="--relay --tls: the client key")
    p.add_argument(
        "--tls-server-name",
        metavar="NAME",
        help="--relay --tls: the name Relay's certificate holds",
    )
    p.add_argument(
        "--since",
        metavar="TIME",
        help="--relay: flows from this time (RFC 3339 or Unix seconds; default: the long "
        "window back, or now with --follow)",
    )
    p.add_argument(
        "--relay-timeout",
        metavar="DURATION",
        default="10s",
        help="--relay: connecting and the first answer (default 10s)",
    )


def _relay_options(args: argparse.Namespace) -> Any:
    """RelayOptions from --relay and its TLS flags (None without --relay); a TLS flag without
    --relay is a usage error."""
    if not args.relay:
        if args.tls or args.tls_ca or args.tls_cert or args.tls_key or args.tls_server_name:
            raise ConfigError("--tls and its options go with --relay")
        if args.since:
            raise ConfigError("--since goes with --relay")
        return None
    from watcher.duration import parse_duration
    from watcher.sources.relay.stream import RelayOptions

    try:
        timeout = parse_duration(args.relay_timeout)
    except ValueError as exc:
        raise ConfigError(f"--relay-timeout: {exc}") from None
    relay = RelayOptions(
        args.relay,
        since=parse_time(args.since, "--since") if args.since else None,
        tls=args.tls,
        ca=args.tls_ca,
        cert=args.tls_cert,
        key=args.tls_key,
        server_name=args.tls_server_name,
        timeout=timeout,
    )
    relay.credentials()  # a bad TLS option is a usage error, before anything starts
    return relay


def _add_source_args(p: argparse.ArgumentParser) -> None:
    src = p.add_argument_group("data source (one of)")
    src.add_argument(
        "--prometheus-url",
        metavar="URL",
        help="Prometheus base URL (default: $DNSWATCH_PROMETHEUS_URL)",
    )
    src.add_argument(
        "--metrics-file",
        metavar="PATH",
        help="a Hubble /metrics scrape or an OpenMetrics history (.gz ok)",
    )
    p.add_argument(
        "--at",
        metavar="TIME",
        help="scan as of TIME: RFC 3339 or Unix seconds "
        "(default: now; for a history file, its last sample)",
    )
    p.add_argument("--config", metavar="FILE", help="YAML config (see docs/configuration.md)")
    p.add_argument(
        "--quiet",
        action="store_true",
        help="no progress line on stderr (shown only on a terminal anyway)",
    )
    p.add_argument(
        "--log-format",
        choices=["text", "json"],
        help="run/serve: one log line per cycle as text or JSON (default: $DNSWATCH_LOG_FORMAT "
        "or text)",
    )
    prom = p.add_argument_group("Prometheus connection")
    prom.add_argument(
        "--bearer-token-file",
        metavar="PATH",
        help="file with a bearer token (or $DNSWATCH_PROMETHEUS_TOKEN)",
    )
    prom.add_argument(
        "--header",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra HTTP header, e.g. X-Scope-OrgID=tenant-a (repeatable)",
    )
    prom.add_argument("--ca-file", metavar="PATH", help="CA bundle for Prometheus' certificate")
    prom.add_argument("--insecure", action="store_true", help="do not verify TLS certificates")
    prom.add_argument("--timeout", metavar="DURATION", help="per-request timeout (e.g. 30s)")


def _add_cycle_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="print every Slack and Alertmanager message instead of sending; write no state",
    )
    p.add_argument("--state", metavar="PATH", help="state database (default: $DNSWATCH_STATE_PATH)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dnswatch",
        description="Find DNS exfiltration in Cilium Hubble DNS metrics.",
        epilog=EPILOG,
    )
    parser.add_argument("--version", action="version", version=f"dnswatch {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    scan = sub.add_parser("scan", help="scan once and print findings", epilog=EPILOG)
    _add_source_args(scan)
    scan.add_argument(
        "--format",
        choices=["json", "text"],
        help="output format (default: text on a terminal, json otherwise)",
    )

    run = sub.add_parser(
        "run",
        help="one cycle for a CronJob: scan, compare with state, deliver, record",
        epilog=EPILOG,
    )
    _add_source_args(run)
    _add_cycle_args(run)
    run.add_argument(
        "--pushgateway-url", metavar="URL", help="push self-metrics to this Pushgateway"
    )

    srv = sub.add_parser(
        "serve",
        help="run the cycle every interval; /metrics and /healthz; stops on SIGTERM",
        epilog=EPILOG,
    )
    _add_source_args(srv)
    _add_cycle_args(srv)
    srv.add_argument(
        "--listen", metavar="HOST:PORT", help="address of /metrics (default 0.0.0.0:9910)"
    )
    srv.add_argument("--interval", metavar="DURATION", help="time between cycles (default 5m)")

    pol = sub.add_parser("policy", help="protection: suggest a Cilium DNS policy", epilog=EPILOG)
    pol_sub = pol.add_subparsers(dest="policy_command", required=True, metavar="ACTION")
    sug = pol_sub.add_parser(
        "suggest",
        help="print a CiliumNetworkPolicy DNS allowlist for a source's workload (YAML)",
        epilog=EPILOG,
    )
    sug.add_argument("--source", required=True, metavar="NS/POD", help="the pod (or workload)")
    _add_source_args(sug)
    sug.add_argument(
        "--lookback", default="7d", metavar="DURATION", help="names used over this span (7d)"
    )
    sug.add_argument(
        "--selector",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="endpointSelector label of the workload (repeatable; default: a guess, marked)",
    )

    sim = sub.add_parser(
        "simulate", help="write an OpenMetrics history with incidents", epilog=EPILOG
    )
    sim.add_argument("-o", "--output", required=True, metavar="PATH", help="file (.gz ok) or -")
    sim.add_argument("--hours", type=float, default=5.0, help="history length (default 5)")
    sim.add_argument(
        "--start",
        type=float,
        help="Unix seconds of the first scrape "
        "(default: a fixed past time, for reproducible files)",
    )
    sim.add_argument("--seed", type=int, default=7)
    sim.add_argument(
        "--incident",
        action="append",
        default=[],
        metavar="SPEC",
        help="KIND[,key=value...]: KIND is tunnel, slow_leak, few_names, spread_leak, drill "
        "(dnswatch drill's queries; source: its namespace, domain: its zone) or flood; "
        "keys: source, domain, at, duration, rate, encoding (base32, base64, hex, "
        "numeric, base64url, words, octets), delete_after, factor, replicas (spread_leak). "
        "Repeatable.",
    )
    sim.add_argument("--demo", action="store_true", help="add the demo's incidents")
    sim.add_argument(
        "--flows",
        action="store_true",
        help="write Hubble flow lines (exporter / hubble observe -o jsonpb) instead of metrics, "
        "with benign look-alikes (IP-named hosts, wildcard DNS, storage IDs, DKIM)",
    )

    dri = sub.add_parser(
        "drill",
        help="render a drill Job (a harmless, recognisable leak) or --check the last drill",
        epilog=EPILOG,
    )
    _add_source_args(dri)
    dri.add_argument(
        "--namespace",
        default="default",
        help="namespace the drill's pod runs in (default: default)",
    )
    dri.add_argument("--zone", help="drill zone (default: drill.zone, under .invalid)")
    dri.add_argument(
        "--schedule",
        metavar="CRON",
        help='a CronJob on this schedule instead of a Job (weekly: "0 9 * * 1")',
    )
    dri.add_argument(
        "--no-policy",
        action="store_true",
        help="leave out the CiliumNetworkPolicy that sends the pod's DNS through the DNS proxy "
        "(test your own policies instead)",
    )
    dri.add_argument(
        "--check",
        action="store_true",
        help="was the last drill seen end to end? From the source (metrics or --flows) and/or "
        "the state; names the stage to look at when not",
    )
    dri.add_argument("--flows", nargs="+", metavar="FILE", help="--check from flow log files")
    _add_relay_args(dri)
    dri.add_argument(
        "--state", metavar="PATH", help="state database (default: $DNSWATCH_STATE_PATH)"
    )
    dri.add_argument("--format", choices=["json", "text"], help="--check output (default: text)")

    flo = sub.add_parser(
        "flows",
        help="read Hubble flow logs (exporter files, hubble observe -o jsonpb) and print findings",
        epilog=EPILOG,
    )
    flo.add_argument(
        "files",
        nargs="*",
        metavar="FILE",
        help="exporter files, rotated backups (.gz ok), a directory of them, or - for stdin",
    )
    flo.add_argument(
        "--follow",
        metavar="PATH",
        nargs="?",
        const="",
        help="tail this exporter file (rotation-safe), or - for a never-ending pipe such as "
        "hubble observe --follow -o jsonpb; with --relay and no PATH, Relay's live stream; "
        "findings are printed as they happen",
    )
    _add_relay_args(flo)
    flo.add_argument(
        "--position-file",
        metavar="PATH",
        help="--follow: save and resume the read position here (no line re-read or skipped)",
    )
    flo.add_argument(
        "--checkpoint",
        metavar="PATH",
        help="--follow: save the windows here every flows.checkpoint_interval and on SIGTERM, "
        "and go on from them after a restart (default: beside --position-file, "
        "NAME.checkpoint)",
    )
    flo.add_argument("--config", metavar="FILE", help="YAML config")
    flo.add_argument("--quiet", action="store_true", help="no progress line on stderr")
    flo.add_argument(
        "--notify",
        action="store_true",
        help="fold findings into incidents and deliver them as `run` does (Slack, "
        "Alertmanager; with --follow, every flows.notify_interval)",
    )
    _add_cycle_args(flo)
    flo.add_argument(
        "--listen",
        metavar="HOST:PORT",
        help="--follow: serve /metrics (flow metrics per source and domain) and /healthz here",
    )
    flo.add_argument(
        "--format",
        choices=["json", "text"],
        help="output format (default: text on a terminal, json otherwise)",
    )

    sub.add_parser("config", help="print the default configuration, every threshold explained")
    return parser


def _log_format(args: argparse.Namespace) -> str:
    from watcher.service import LOG_FORMAT

    fmt = getattr(args, "log_format", None) or os.environ.get("DNSWATCH_LOG_FORMAT") or "text"
    if fmt not in ("text", "json"):
        raise ConfigError(f"DNSWATCH_LOG_FORMAT must be text or json, got {fmt!r}")
    LOG_FORMAT["value"] = fmt
    return fmt


def _config(args: argparse.Namespace) -> Config:
    """The config file with the command line's flags on top (config.with_flags)."""
    flags = {name: getattr(args, name, None) for name in FLAG_NAMES}
    return with_flags(load_config(args.config), flags)


def scan_evidence(args: argparse.Namespace, cfg: Config, progress: Progress = QUIET) -> Evidence:
    """Open the chosen source and read its evidence at --at (shared by scan, run and serve)."""
    from watcher.sources.opener import open_source, read_evidence

    at = parse_time(args.at) if args.at else None
    if args.metrics_file and args.prometheus_url:
        raise ConfigError("give either --prometheus-url or --metrics-file, not both")
    return read_evidence(open_source(cfg, args.metrics_file, progress), at, progress)


def cmd_scan(args: argparse.Namespace) -> int:
    cfg = _config(args)
    progress = Progress.for_terminal(args.quiet)
    try:
        found = scanned(scan_evidence(args, cfg, progress), cfg)
    finally:
        progress.finish()
    fmt = args.format or ("text" if sys.stdout.isatty() else "json")
    render = as_json if fmt == "json" else as_text
    out = render(found.at, found.findings, found.warnings)
    sys.stdout.write(out + "\n")
    return EXIT_OK


def _reader(
    args: argparse.Namespace, cfg: Config, *, replay: bool = False
) -> Callable[[], Scanned]:
    """Each call reads and judges fresh evidence at --at exactly (or now). With `replay` (serve),
    the first cycle scans at --at and later ones advance with the wall clock (a fire drill on a
    history)."""
    if not args.at or not replay:
        return lambda: scanned(scan_evidence(args, cfg), cfg)
    start_at, start_wall = parse_time(args.at), time.time()

    def read() -> Scanned:
        shifted = argparse.Namespace(
            **{**vars(args), "at": str(start_at + time.time() - start_wall)}
        )
        return scanned(scan_evidence(shifted, cfg), cfg)

    return read


def cmd_run(args: argparse.Namespace) -> int:
    from watcher.cycle import run_cycle
    from watcher.notify.slack import SlackChannel
    from watcher.selfmetrics import SelfMetrics
    from watcher.service import log

    cfg = _config(args)
    metrics = SelfMetrics()
    t0 = time.monotonic()
    report = run_cycle(_reader(args, cfg), cfg, metrics, dry_run=args.dry_run)
    if _log_format(args) == "json":
        log("dnswatch run", cycle_seconds=round(time.monotonic() - t0, 3), **report.fields())
    else:
        for err in report.errors:
            print(f"dnswatch: delivery failed (kept pending): {err}", file=sys.stderr)
        print(f"dnswatch run: {report.line()}", file=sys.stderr)
    configured = SlackChannel.configured(cfg.slack) or cfg.alertmanager.url
    json_logs = _log_format(args) == "json"

    def note(text: str) -> None:
        if json_logs:
            log(text, level="warning")
        else:
            print(f"dnswatch: {text}", file=sys.stderr)

    if not configured and not args.dry_run:
        note("no Slack or Alertmanager configured: incidents recorded, nothing sent")
    if cfg.serve.pushgateway_url and not args.dry_run:
        try:
            metrics.push(cfg.serve.pushgateway_url)
        except Exception as exc:  # noqa: BLE001 - the push is best effort, the run still counts
            note(f"pushgateway: {type(exc).__name__}: {exc}")
    if report.scan_error is not None:
        raise report.scan_error
    if report.all_deliveries_failed:
        return EXIT_DELIVERY
    return EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    from watcher.cycle import channels, run_cycle
    from watcher.selfmetrics import SelfMetrics
    from watcher.service import serve

    _log_format(args)
    cfg = _config(args)
    channels(cfg)  # a bad secret or URL fails now, not in the first cycle
    metrics = SelfMetrics()
    read = _reader(args, cfg, replay=True)

    def cycle() -> tuple[bool, str, dict[str, Any]]:
        report = run_cycle(read, cfg, metrics, dry_run=args.dry_run)
        errs = "".join(f"; delivery failed (kept pending): {e}" for e in report.errors)
        return report.scan_error is None, report.line() + errs, report.fields()

    return serve(cycle, cfg, metrics)


def cmd_policy(args: argparse.Namespace) -> int:
    from watcher.duration import parse_duration
    from watcher.suggestion import suggest

    if args.metrics_file:
        raise ConfigError(
            "policy suggest reads the lookback from Prometheus: give --prometheus-url"
        )
    source = args.source.strip()
    if "/" not in source or not all(source.split("/", 1)):
        raise ConfigError(f"--source takes NS/POD, got {args.source!r}")
    selector: dict[str, str] = {}
    for item in args.selector:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--selector takes KEY=VALUE, got {item!r}")
        selector[key.strip()] = value.strip()
    try:
        lookback = parse_duration(args.lookback)
    except ValueError as exc:
        raise ConfigError(f"--lookback: {exc}") from None
    cfg = _config(args)
    at = parse_time(args.at) if args.at else time.time()
    sys.stdout.write(suggest(cfg, source, at, lookback, args.lookback, selector or None))
    return EXIT_OK


def cmd_simulate(args: argparse.Namespace) -> int:
    from watcher import simulate

    if not 0.5 <= args.hours <= 24 * 14:
        raise ConfigError("--hours must be between 0.5 and 336")
    incidents = [*(simulate.DEMO_INCIDENTS if args.demo else []), *args.incident]
    start = int(args.start) if args.start is not None else simulate.DEFAULT_START
    cluster = simulate.build(args.hours, incidents, args.seed, start)
    if args.flows:
        from watcher import simulate_flows

        simulate_flows.add_hard_negatives(cluster, args.seed + 4)
        try:
            if args.output == "-":
                n = simulate_flows.write(cluster, None, sys.stdout)
            else:
                n = simulate_flows.write(cluster, args.output)
        except OSError as exc:
            raise ConfigError(f"cannot write {args.output}: {exc.strerror or exc}") from None
        print(f"wrote {n} flow lines, {cluster.minutes} minutes", file=sys.stderr)
        return EXIT_OK
    if args.output == "-":
        n = simulate.write_openmetrics(cluster, sys.stdout)
    else:
        try:
            n = simulate.write(cluster, args.output)
        except OSError as exc:
            raise ConfigError(f"cannot write {args.output}: {exc.strerror or exc}") from None
    print(
        f"wrote {n} samples, {cluster.minutes} scrapes ending at {simulate.end_time(cluster)}",
        file=sys.stderr,
    )
    return EXIT_OK


def cmd_flows(args: argparse.Namespace) -> int:
    from watcher.flows.command import FlowsOptions, run

    cfg = _config(args)
    relay = _relay_options(args)
    follow = args.follow
    if follow == "":
        if relay is None:
            raise ConfigError("--follow needs a PATH (or - for stdin), or --relay ADDRESS")
        follow = "relay"
    options = FlowsOptions(
        files=list(args.files or []),
        follow=follow,
        relay=relay,
        position_file=args.position_file,
        checkpoint=args.checkpoint,
        listen=args.listen,
        notify=args.notify,
        dry_run=args.dry_run,
        state=args.state,
        format=args.format or ("text" if sys.stdout.isatty() else "json"),
        quiet=args.quiet,
    )
    return run(options, cfg)


def cmd_drill(args: argparse.Namespace) -> int:
    from watcher import drill, drillcheck

    cfg = _config(args)
    if args.zone:
        cfg = cfg.model_copy(update={"drill": cfg.drill.model_copy(update={"zone": args.zone})})
    if not args.check:
        import yaml

        docs = drill.manifests(cfg.drill, args.namespace, args.schedule, not args.no_policy)
        sys.stdout.write(yaml.safe_dump_all(docs, sort_keys=False))
        return EXIT_OK
    if args.metrics_file and args.prometheus_url:
        raise ConfigError("give either --prometheus-url or --metrics-file, not both")
    at = parse_time(args.at) if args.at else None
    check = drillcheck.check(
        cfg, args.flows, args.metrics_file, at, args.namespace, relay=_relay_options(args)
    )
    sys.stdout.write(drillcheck.render(check, args.format or "text") + "\n")
    return EXIT_OK if check.seen else EXIT_DRILL_MISSED


def cmd_config(args: argparse.Namespace) -> int:
    from watcher.config import defaults_yaml

    sys.stdout.write(defaults_yaml())
    return EXIT_OK


COMMANDS = {
    "scan": cmd_scan,
    "run": cmd_run,
    "serve": cmd_serve,
    "policy": cmd_policy,
    "simulate": cmd_simulate,
    "config": cmd_config,
    "flows": cmd_flows,
    "drill": cmd_drill,
}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = args.debug or os.environ.get("DNSWATCH_DEBUG") == "1"
    try:
        return COMMANDS[args.command](args)
    except DnswatchError as exc:
        if debug:
            raise
        print(f"dnswatch: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("dnswatch: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except Exception as exc:
        if debug:
            raise
        print(
            f"dnswatch: internal error: {type(exc).__name__}: {exc} (rerun with --debug)",
            file=sys.stderr,
        )
        return 1


def entrypoint() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entrypoint()

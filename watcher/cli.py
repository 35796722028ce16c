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
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from watcher import __version__
from watcher.config import Config, load_config
from watcher.detect import detect_all
from watcher.errors import EXIT_DELIVERY, EXIT_DRILL_MISSED, EXIT_OK, ConfigError, DnswatchError
from watcher.findings import Finding, rfc3339, sort_findings
from watcher.progress import QUIET, Progress
from watcher.render import as_json, as_text
from watcher.window import Window

EPILOG = """exit codes: 0 ran (findings or not), 1 internal error, 2 usage or configuration
error, 3 data source failed, 4 state database unusable (run/serve), 5 every delivery failed (run;
they stay pending), 6 drill --check: the last drill was not seen end to end. Errors are one line
on stderr; --debug adds the traceback."""


def parse_time(value: str) -> float:
    """RFC 3339 (`2026-05-28T20:00:00Z`) or Unix seconds."""
    text = value.strip()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ConfigError(f"--at: not RFC 3339 or Unix seconds: {value!r}") from None
    if parsed.tzinfo is None:
        raise ConfigError(f"--at: give a time zone (e.g. Z): {value!r}")
    return parsed.timestamp()


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
        help="tail this exporter file (rotation-safe), or - for a never-ending pipe such as "
        "hubble observe --follow -o jsonpb; findings are printed as they happen",
    )
    flo.add_argument(
        "--position-file",
        metavar="PATH",
        help="--follow: save and resume the read position here (no line re-read or skipped)",
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
    cfg = load_config(args.config)
    prom: dict[str, Any] = {}
    if getattr(args, "prometheus_url", None):
        prom["url"] = args.prometheus_url
    if getattr(args, "insecure", False):
        prom["verify_tls"] = False
    if getattr(args, "ca_file", None):
        prom["ca_file"] = args.ca_file
    if getattr(args, "bearer_token_file", None):
        prom["bearer_token_file"] = args.bearer_token_file
    if getattr(args, "timeout", None):
        prom["timeout"] = args.timeout
    headers = dict(cfg.prometheus.headers)
    for h in getattr(args, "header", []) or []:
        name, sep, value = h.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"--header takes NAME=VALUE, got {h!r}")
        headers[name.strip()] = value.strip()
    prom["headers"] = headers
    data = cfg.model_dump()
    data["prometheus"].update(prom)
    # SecretStr dumps as a mask: keep the real values.
    data["slack"]["webhook_url"] = cfg.slack.webhook_url
    data["slack"]["token"] = cfg.slack.token
    if getattr(args, "state", None):
        data["state"]["path"] = args.state
    if getattr(args, "pushgateway_url", None):
        data["serve"]["pushgateway_url"] = args.pushgateway_url
    if getattr(args, "listen", None):
        data["serve"]["listen"] = args.listen
    if getattr(args, "interval", None):
        data["serve"]["interval"] = args.interval
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "option"
        raise ConfigError(f"bad option {where}: {first['msg']}") from None


def scan_window(args: argparse.Namespace, cfg: Config, progress: Progress = QUIET) -> Window:
    """Open the chosen source and read the window at --at (shared by scan, run and serve)."""
    from watcher.sources.metrics_file import MetricsFileSource
    from watcher.sources.prometheus import PrometheusSource

    at = parse_time(args.at) if args.at else None
    if args.metrics_file and (args.prometheus_url):
        raise ConfigError("give either --prometheus-url or --metrics-file, not both")
    if args.metrics_file:
        progress.step(f"reading {args.metrics_file}")
        fsrc = MetricsFileSource(args.metrics_file, cfg)
        when = at if at is not None else (fsrc.latest() or time.time())
        progress.step("building the window")
        window = fsrc.window(when)
        progress.finish()
        return window
    url = cfg.prometheus.url
    if not url:
        raise ConfigError(
            "no data source: give --prometheus-url URL (or set "
            "DNSWATCH_PROMETHEUS_URL) or --metrics-file PATH"
        )
    source = PrometheusSource(url, cfg)
    source.progress = progress
    return source.window(at if at is not None else time.time())


def cmd_scan(args: argparse.Namespace) -> int:
    cfg = _config(args)
    progress = Progress.for_terminal(args.quiet)
    try:
        window = scan_window(args, cfg, progress)
    finally:
        progress.finish()
    findings: list[Finding] = detect_all(window, cfg)
    fmt = args.format or ("text" if sys.stdout.isatty() else "json")
    out = (
        as_json(window.at, findings, window.warnings)
        if fmt == "json"
        else as_text(window.at, findings, window.warnings)
    )
    sys.stdout.write(out + "\n")
    return EXIT_OK


def _window_reader(
    args: argparse.Namespace, cfg: Config, *, replay: bool = False
) -> Callable[[], Window]:
    """Each call reads a fresh window at --at exactly (or now). With `replay` (serve), the first
    cycle scans at --at and later ones advance with the wall clock (a fire drill on a history)."""
    if not args.at or not replay:
        return lambda: scan_window(args, cfg)
    start_at, start_wall = parse_time(args.at), time.time()

    def read() -> Window:
        shifted = argparse.Namespace(
            **{**vars(args), "at": str(start_at + time.time() - start_wall)}
        )
        return scan_window(shifted, cfg)

    return read


def cmd_run(args: argparse.Namespace) -> int:
    from watcher.cycle import run_cycle
    from watcher.notify.slack import SlackChannel
    from watcher.selfmetrics import SelfMetrics
    from watcher.service import log

    cfg = _config(args)
    metrics = SelfMetrics()
    t0 = time.monotonic()
    report = run_cycle(_window_reader(args, cfg), cfg, metrics, dry_run=args.dry_run)
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
    read = _window_reader(args, cfg, replay=True)

    def cycle() -> tuple[bool, str, dict[str, Any]]:
        report = run_cycle(read, cfg, metrics, dry_run=args.dry_run)
        errs = "".join(f"; delivery failed (kept pending): {e}" for e in report.errors)
        return report.scan_error is None, report.line() + errs, report.fields()

    return serve(cycle, cfg, metrics)


def cmd_policy(args: argparse.Namespace) -> int:
    import pandas as pd

    from watcher import policy
    from watcher.duration import parse_duration
    from watcher.sources.prometheus import PrometheusSource
    from watcher.window import apply_prefilter, empty_names, workload_of

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
    if not cfg.prometheus.url:
        raise ConfigError("no data source: give --prometheus-url URL (or DNSWATCH_PROMETHEUS_URL)")
    at = parse_time(args.at) if args.at else time.time()
    prom = PrometheusSource(cfg.prometheus.url, cfg)
    names = prom.workload_names(source, at, lookback)
    workload = workload_of(source)
    if names.empty:
        raise DnswatchError(
            f"no DNS names from the pods of {workload} in the {args.lookback} before "
            f"{rfc3339(at)}: nothing to build an allowlist from"
        )
    # Flagged: what the watcher reports now, and what its detectors find over the whole lookback
    # (a tunnel that ran three days ago must not enter the allowlist).
    flagged: dict[str, str] = {}
    now = detect_all(prom.window(at), cfg)
    span_seconds = max(lookback, cfg.windows.short)
    lb_windows = cfg.windows.model_copy(update={"long": span_seconds})
    lb_cfg = cfg.model_copy(update={"windows": lb_windows})
    pods = names.assign(source=workload)
    span = Window(
        at=at,
        short_seconds=cfg.windows.short,
        long_seconds=span_seconds,
        step_seconds=cfg.windows.step,
        short=empty_names(),
        long=pods,
        shaped=apply_prefilter(
            pods, cfg.names.prefilter_label_length, cfg.names.prefilter_name_length
        ),
        volume=pd.DataFrame(),
    )
    for f in [*now, *detect_all(span, lb_cfg)]:
        if f.domain and f.is_alert and workload_of(f.source) == workload:
            flagged.setdefault(f.domain, f"{f.severity} {f.kind}: {f.summary}")
    ns, _, base = workload.partition("/")
    suggestion = policy.build(
        ns,
        base,
        sorted({s.split("/", 1)[1] for s in names["source"]}),
        {str(k): float(v) for k, v in names.groupby("name")["queries"].sum().items()},
        flagged,
        cfg.labels.cluster_domain,
        selector or None,
    )
    sys.stdout.write(policy.render(suggestion, source, at, args.lookback))
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
    import json
    import signal
    from pathlib import Path

    from watcher.cycle import Scanned, channels, run_cycle
    from watcher.flows import FlowScan, follow
    from watcher.render import text_line
    from watcher.selfmetrics import SelfMetrics
    from watcher.sources.flows import read_lines

    cfg = _config(args)
    fmt = args.format or ("text" if sys.stdout.isatty() else "json")
    if (args.dry_run or args.state) and not args.notify:
        raise ConfigError("--dry-run and --state go with --notify")
    if args.listen and not args.follow:
        raise ConfigError("--listen goes with --follow")
    metrics = SelfMetrics()
    failed = {"all": False}

    def notify(scan: FlowScan, findings: list[Finding] | None = None) -> None:
        at = scan.window.now or time.time()
        got = findings if findings is not None else scan.current()
        report = run_cycle(
            lambda: Scanned(at, got, scan.warnings()), cfg, metrics, dry_run=args.dry_run
        )
        for err in report.errors:
            print(f"dnswatch: delivery failed (kept pending): {err}", file=sys.stderr)
        print(f"dnswatch flows: {report.line()}", file=sys.stderr)
        failed["all"] = report.all_deliveries_failed

    if args.notify:
        channels(cfg)  # a bad secret or URL fails now
    if args.follow:
        if args.files:
            raise ConfigError("give FILE arguments or --follow PATH, not both")
        stopping = {"now": False}

        def stop(*_: object) -> None:
            stopping["now"] = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)

        def emit(f: Finding) -> None:
            if not f.is_alert:
                return
            if fmt == "json":
                line = json.dumps(f.to_json(), ensure_ascii=True, separators=(",", ":"))
            else:
                line = text_line(f)
            sys.stdout.write(line + "\n")
            sys.stdout.flush()

        pos = Path(args.position_file) if args.position_file else None
        tick = None
        server = None
        if args.listen:
            from http.server import ThreadingHTTPServer
            from threading import Thread

            from watcher.service import Health, _handler, parse_listen

            health = Health(max(30.0, 10 * cfg.flows.report_interval))
            host, port = parse_listen(args.listen)
            try:
                server = ThreadingHTTPServer((host, port), _handler(metrics, health))
            except OSError as exc:
                raise ConfigError(
                    f"cannot listen on {host}:{port}: {exc.strerror or exc}"
                ) from None
            server.daemon_threads = True
            Thread(target=server.serve_forever, daemon=True).start()
            last = {"t": 0.0}

            def tick(scan: FlowScan) -> None:
                health.ok()
                if time.monotonic() - last["t"] < 10 * cfg.flows.report_interval:
                    return
                last["t"] = time.monotonic()
                metrics.flows(scan.counts.to_json(), len(scan.window.pairs), scan.current())
                metrics.flow_channels(scan.exported())
                metrics.flow_seen(scan.window.now)

        follow(
            None if args.follow == "-" else Path(args.follow),
            cfg,
            emit,
            pos,
            stop=lambda: stopping["now"],
            every=notify if args.notify else None,
            tick=tick,
        )
        if server is not None:
            server.shutdown()
        return EXIT_DELIVERY if failed["all"] else EXIT_OK
    if not args.files:
        raise ConfigError("give flow files (or - for stdin), or --follow PATH")
    if args.position_file:
        raise ConfigError("--position-file goes with --follow")
    scan = FlowScan(cfg)
    progress = Progress.for_terminal(args.quiet)

    def counted(lines: Iterable[bytes]) -> Iterator[bytes]:
        for n, line in enumerate(lines, 1):
            if n % 100_000 == 0:
                progress.step(f"read {n:,} lines, {len(scan.window.pairs):,} active pairs")
            yield line

    try:
        scan.feed(counted(read_lines(args.files)))
    finally:
        progress.finish()
    result = scan.result()
    if fmt == "json":
        sys.stdout.write(json.dumps(result, ensure_ascii=True, indent=1) + "\n")
    else:
        findings = list(scan.best.values())
        skipped = ", ".join(f"{n} {r}" for r, n in result["skipped"].items())
        head = f"read {result['lines_read']} lines, {result['dns_flows']} DNS flows" + (
            f"; skipped {skipped}" if skipped else ""
        )
        text = as_text(scan.window.now or time.time(), findings, result["warnings"])
        sys.stdout.write(text.replace(": ", f" ({head}): ", 1) + "\n")
    if args.notify:
        # A file read to its end: every finding of the file, as one cycle.
        notify(scan, sort_findings(list(scan.best.values())))
    return EXIT_DELIVERY if failed["all"] else EXIT_OK


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
    check = drillcheck.Check()
    if args.flows:
        drillcheck.flows(check, cfg, args.flows, args.namespace)
    elif args.metrics_file or cfg.prometheus.url:
        count_ns = None
        if not args.metrics_file:
            from watcher.sources.prometheus import PrometheusSource

            prom = PrometheusSource(str(cfg.prometheus.url), cfg)
            at = parse_time(args.at) if args.at else time.time()
            count_ns = lambda ns: prom.namespace_series(ns, at)  # noqa: E731
        drillcheck.metrics(check, cfg, lambda: scan_window(args, cfg), args.namespace, count_ns)
    drillcheck.delivery(check, cfg)
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

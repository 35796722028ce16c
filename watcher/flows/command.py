"""`dnswatch flows`: read flow files or follow one, print findings, notify like `run`.

The CLI parses; this runs the command: one pass over files (judged in hindsight, one notify
cycle at the end) or a follower (findings as they come, a notify cycle every
flows.notify_interval, /metrics and /healthz with --listen).
"""

from __future__ import annotations

import json
import signal
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from watcher.config import Config
from watcher.cycle import channels, run_cycle
from watcher.errors import EXIT_DELIVERY, EXIT_OK, ConfigError
from watcher.findings import Finding, Scanned, sort_findings
from watcher.flows.checkpoint import Checkpoint
from watcher.flows.follow import follow
from watcher.flows.scan import FlowScan
from watcher.progress import Progress
from watcher.render import as_text, text_line
from watcher.selfmetrics import SelfMetrics
from watcher.service import Health, start_http
from watcher.sources.flows import LineCounts, read_lines
from watcher.sources.relay.stream import RelayOptions, RelayStream


@dataclass(frozen=True)
class FlowsOptions:
    files: list[str] = field(default_factory=list)
    follow: str | None = None  # a path, or - for stdin
    position_file: str | None = None
    checkpoint: str | None = None  # default: beside the position file
    relay: RelayOptions | None = None  # read Hubble Relay's GetFlows instead of files
    listen: str | None = None
    notify: bool = False
    dry_run: bool = False
    state: str | None = None
    format: str = "json"
    quiet: bool = False


def run(o: FlowsOptions, cfg: Config) -> int:
    fmt = o.format
    if (o.dry_run or o.state) and not o.notify:
        raise ConfigError("--dry-run and --state go with --notify")
    if o.listen and not o.follow:
        raise ConfigError("--listen goes with --follow")
    metrics = SelfMetrics()
    failed = {"all": False}

    def notify(scan: FlowScan, findings: list[Finding] | None = None) -> None:
        at = scan.window.now or time.time()
        got = findings if findings is not None else scan.current()
        report = run_cycle(
            lambda: Scanned(at, got, scan.warnings()), cfg, metrics, dry_run=o.dry_run
        )
        for err in report.errors:
            print(f"dnswatch: delivery failed (kept pending): {err}", file=sys.stderr)
        print(f"dnswatch flows: {report.line()}", file=sys.stderr)
        failed["all"] = report.all_deliveries_failed

    if o.notify:
        channels(cfg)  # a bad secret or URL fails now

    def say(message: str) -> None:
        print(f"dnswatch flows: warning: {message}", file=sys.stderr)

    if o.relay is not None:
        if o.files or (o.follow not in (None, "relay")):
            raise ConfigError("--relay reads Relay's stream: give no FILE and no --follow PATH")
        if o.position_file:
            raise ConfigError("--position-file goes with files; --relay resumes from --checkpoint")
    if o.follow:
        if o.files:
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

        pos = Path(o.position_file) if o.position_file else None
        streams: list[RelayStream] = []
        ck = _checkpoint(o, cfg, pos)

        def warn(stage: str, message: str) -> None:
            say(message)
            metrics.checkpoint(failed=stage)

        tick = None
        server = None
        if o.listen:
            health = Health(max(30.0, 10 * cfg.flows.report_interval))
            server = start_http(o.listen, metrics, health)
            last = {"t": 0.0}

            def tick(scan: FlowScan) -> None:
                health.ok()
                if time.monotonic() - last["t"] < 10 * cfg.flows.report_interval:
                    return
                last["t"] = time.monotonic()
                metrics.flows(scan.counts.to_json(), len(scan.window.pairs), scan.current())
                metrics.flow_channels(scan.exported())
                metrics.flow_seen(scan.window.now)
                for stream in streams:
                    metrics.relay(stream.coverage)
                if ck is not None:
                    metrics.checkpoint(written=ck.written)

        relay = None
        if o.relay is not None:
            opts = o.relay

            def relay(position: dict[str, Any] | None, counts: LineCounts) -> RelayStream:
                stream = RelayStream(
                    opts, True, opts.since, counts=counts, warn=say, position=position
                )
                streams.append(stream)
                return stream

        follow(
            None if o.follow in ("-", "relay") else Path(o.follow),
            cfg,
            emit,
            pos,
            stop=lambda: stopping["now"],
            every=notify if o.notify else None,
            tick=tick,
            checkpoint=ck,
            warn=warn,
            relay=relay,
        )
        if server is not None:
            server.shutdown()
        return EXIT_DELIVERY if failed["all"] else EXIT_OK
    if not o.files and o.relay is None:
        raise ConfigError("give flow files (or - for stdin), --follow PATH, or --relay ADDRESS")
    if o.position_file or o.checkpoint:
        raise ConfigError("--position-file and --checkpoint go with --follow")
    scan = FlowScan(cfg)
    progress = Progress.for_terminal(o.quiet)

    def counted(lines: Iterable[bytes]) -> Iterator[bytes]:
        for n, line in enumerate(lines, 1):
            if n % 100_000 == 0:
                progress.step(f"read {n:,} lines, {len(scan.window.pairs):,} active pairs")
            yield line

    try:
        if o.relay is not None:
            _read_relay(scan, o.relay, cfg, say)
        else:
            scan.feed(counted(read_lines(o.files)))
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
    if o.notify:
        # A file read to its end: every finding of the file, as one cycle.
        notify(scan, sort_findings(list(scan.best.values())))
    return EXIT_DELIVERY if failed["all"] else EXIT_OK


def _checkpoint(o: FlowsOptions, cfg: Config, pos: Path | None) -> Checkpoint | None:
    """The follower's checkpoint file: --checkpoint, else beside the position file (the state
    volume); none for a pipe (it cannot be resumed) or with flows.checkpoint_interval off."""
    if o.follow == "-":
        if o.checkpoint:
            raise ConfigError("--checkpoint needs a file to resume: --follow PATH, not -")
        return None
    if not cfg.flows.checkpoint_interval:
        return None
    if o.checkpoint:
        return Checkpoint(Path(o.checkpoint), cfg)
    if pos is not None:
        return Checkpoint(pos.with_name(pos.stem + ".checkpoint"), cfg)
    return None


def _read_relay(
    scan: FlowScan, opts: RelayOptions, cfg: Config, say: Callable[[str], None]
) -> None:
    """What Relay holds of the long window (its nodes' ring buffers), to its end."""
    now = time.time()
    since = opts.since if opts.since is not None else now - cfg.windows.long
    stream = RelayStream(opts, False, since, until=now, counts=scan.source.counts, warn=say)
    scan.source.notes = stream.coverage.warnings
    try:
        while not stream.eof:
            scan.feed_flows(stream.read())
    finally:
        stream.close()

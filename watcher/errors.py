"""One base error, mapped by the CLI to a one-line message and a documented exit code."""

from __future__ import annotations

# Exit codes (documented in README and `dnswatch --help`).
EXIT_OK = 0
EXIT_USAGE = 2  # bad arguments or configuration
EXIT_SOURCE = 3  # the data source failed: unreachable, bad answer, metric or label missing
EXIT_STATE = 4  # run/serve: the state database is unreadable, corrupt or locked too long
EXIT_DELIVERY = 5  # run: every delivery attempted in this run failed (they stay pending)
EXIT_DRILL_MISSED = 6  # drill --check: the last drill was not seen end to end


class DnswatchError(Exception):
    """An error the user can act on; its message is one line."""

    exit_code = EXIT_SOURCE


class ConfigError(DnswatchError):
    """Malformed configuration or arguments."""

    exit_code = EXIT_USAGE


class SourceError(DnswatchError):
    """The data source could not give us a window of activity."""

    exit_code = EXIT_SOURCE


class RefusedError(SourceError):
    """Prometheus refused or could not finish one query (too many samples, a timeout, a busy
    query frontend): the work can be split and asked again."""


class QueryError(SourceError):
    """Prometheus rejected one query's text (HTTP 400, bad_data): the query, not the server,
    is at fault, so a batch of names can be asked again without the name that broke it."""


class MissingDataError(SourceError):
    """The metric or a label the detectors need is not there."""


class StateError(DnswatchError):
    """The state database cannot be used: corrupt, not ours, locked, unwritable."""

    exit_code = EXIT_STATE


class DeliveryError(DnswatchError):
    """A notification could not be delivered (it stays pending); message is secret-free."""

    exit_code = EXIT_DELIVERY

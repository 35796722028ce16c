"""HTTP to Prometheus (prometheus-api-client): credentials, retries, and every failure as one
of the watcher's errors (SourceError: cannot read; RefusedError: too big or too slow, worth
splitting)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import orjson
import requests
import urllib3
from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException
from urllib3.util.retry import Retry

from watcher.config import PrometheusConfig
from watcher.errors import ConfigError, QueryError, RefusedError, SourceError
from watcher.text import terminal_safe


def _secret(name: str) -> str | None:
    """A secret from DNSWATCH_<NAME> or the file named by DNSWATCH_<NAME>_FILE."""
    value = os.environ.get(f"DNSWATCH_{name}")
    path = os.environ.get(f"DNSWATCH_{name}_FILE")
    if path:
        try:
            value = Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"cannot read DNSWATCH_{name}_FILE: {exc.strerror or exc}") from None
    return value or None


class PrometheusClient:
    def __init__(
        self, url: str, p: PrometheusConfig, session: requests.Session | None = None
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"Prometheus URL must start with http:// or https://: {url!r}")
        self.url = url
        self.timeout = p.timeout
        self.retries = p.retries
        headers = dict(p.headers)
        token = _secret("PROMETHEUS_TOKEN")
        if p.bearer_token_file:
            try:
                token = Path(p.bearer_token_file).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(f"cannot read bearer token file: {exc.strerror or exc}") from None
        if token:
            headers["Authorization"] = f"Bearer {token}"
        user, password = _secret("PROMETHEUS_USERNAME"), _secret("PROMETHEUS_PASSWORD")
        sess = session or requests.Session()
        sess.verify = p.ca_file if (p.ca_file and p.verify_tls) else p.verify_tls
        if not p.verify_tls:
            # Asked for with --insecure: one warning per request would bury the output.
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        retry = Retry(
            total=p.retries,
            # A query that outlasted the timeout once will again, and Prometheus goes on
            # evaluating the abandoned one: not retried but split (RefusedError -> splitting).
            read=False,
            backoff_factor=0.5,
            status_forcelist=(502, 503, 504),
            allowed_methods=frozenset({"GET", "POST"}),
            raise_on_status=False,
        )
        self.api = PrometheusConnect(
            url=url.rstrip("/"),
            headers=headers or None,
            retry=retry,
            auth=(user, password or "") if user else None,
            session=sess,
            timeout=int(p.timeout) or 1,
            method="POST",
        )
        self._form = (sess, headers, (user, password or "") if user else None, p.timeout or 1)

    def call(self, fn: Any, *args: Any, **kwargs: Any) -> list[Any]:
        """fn(*args, **kwargs), a request, with its failures as the watcher's errors."""
        try:
            result = fn(*args, **kwargs)
        except requests.exceptions.JSONDecodeError:
            raise SourceError(f"{self.url} did not answer like a Prometheus API") from None
        except requests.exceptions.SSLError:
            raise SourceError(f"TLS error talking to Prometheus at {self.url}") from None
        except requests.exceptions.Timeout as exc:
            raise RefusedError(self._timeout_message(exc)) from None
        except requests.exceptions.ConnectionError as exc:
            # Retries exhausted on read timeouts arrive as a ConnectionError wrapping them.
            if _timed_out(exc):
                raise RefusedError(self._timeout_message(exc)) from None
            raise SourceError(
                f"cannot reach Prometheus at {self.url} ({_connect_reason(exc)})"
            ) from None
        except requests.exceptions.RequestException as exc:
            reason = type(exc).__name__
            raise SourceError(f"cannot reach Prometheus at {self.url} ({reason})") from None
        except PrometheusApiClientException as exc:
            text = f"Prometheus answered with an error: {_api_error(str(exc))}"
            if re.search(r"HTTP Status Code (422|503|504)\b", str(exc)):
                raise RefusedError(text) from None  # too big or too busy: worth splitting
            if re.search(r"HTTP Status Code 400\b", str(exc)):
                raise QueryError(text) from None  # this query's text: the server is fine
            raise SourceError(text) from None
        except (ValueError, KeyError, TypeError):
            raise SourceError(f"{self.url} did not answer like a Prometheus API") from None
        if not isinstance(result, list):
            raise SourceError(f"{self.url} did not answer like a Prometheus API")
        return result

    def _timeout_message(self, exc: Exception) -> str:
        if _connect_timeout(exc):
            tries = self.retries + 1
            what = (
                f"no connection within {self.timeout:g}s ({tries} tr{'y' if tries == 1 else 'ies'})"
            )
        else:
            what = f"no answer within {self.timeout:g}s (not retried: it would be as slow again)"
        return (
            f"Prometheus at {self.url} timed out: {what}; a slow or overloaded server: raise "
            "--timeout (prometheus.timeout) or scan a smaller cluster"
        )

    def _post(self, path: str, form: dict[str, str]) -> list[dict[str, Any]]:
        """A query as a POST form body. The client library puts the query in the URL even for
        POST, and gateways cap URLs (nginx: 8 KB; Python's http.server: 64 KB) below what a
        fetch of a thousand exact names needs. Errors read as the library's, for call()."""
        sess, headers, auth, timeout = self._form
        response = sess.post(
            f"{self.api.url}{path}",
            data=form,
            headers=headers,
            auth=auth,
            timeout=timeout,
            verify=sess.verify,  # explicit, as the client library does
        )
        if response.status_code != 200:
            raise PrometheusApiClientException(
                f"HTTP Status Code {response.status_code} ({response.content!r})"
            )
        # orjson from the bytes: no decoded copy of a big answer's text beside its objects
        # (a 1M-series scan's zone counts are ~80k rows), and about 3x faster.
        result = orjson.loads(response.content)["data"]["result"]
        return result if isinstance(result, list) else []

    def query(self, expr: str, at: float) -> list[dict[str, Any]]:
        return self.call(self._post, "/api/v1/query", {"query": expr, "time": f"{at:.3f}"})

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
        form = {
            "query": expr,
            "start": f"{start:.3f}",
            "end": f"{end:.3f}",
            "step": f"{int(step)}s",
        }
        return self.call(self._post, "/api/v1/query_range", form)

    def label_names(self, match: str, start: float, end: float) -> set[str]:
        """Label names of the series matching `match` between start and end: an index lookup,
        no samples read."""
        params = {"match[]": match, "start": f"{start:.3f}", "end": f"{end:.3f}"}
        return {str(n) for n in self.call(self.api.get_label_names, params=params)}

    def label_values(self, label: str, match: str, start: float, end: float) -> list[Any]:
        """Values of `label` on series matching `match` between start and end."""
        params = {"match[]": match, "start": f"{start:.3f}", "end": f"{end:.3f}"}
        return self.call(self.api.get_label_values, label, params=params)


def short(exc: Exception) -> str:
    """An error's own text, without the what-was-asked prefix, for a warning."""
    return str(exc).split(": ", 1)[-1][:160]


def _api_error(raw: str) -> str:
    """Pull Prometheus' own error text out of the client's exception message."""
    status = re.search(r"HTTP Status Code (\d+)", raw)
    error = re.search(r'"error":"((?:[^"\\]|\\.)*)"', raw)
    text = error.group(1) if error else raw
    code = f"HTTP {status.group(1)}: " if status else ""
    return terminal_safe(code + text)[:240]


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception, what it wraps (requests puts urllib3's error in args) and its causes."""
    seen: list[BaseException] = []
    todo: list[BaseException] = [exc]
    while todo and len(seen) < 12:
        e = todo.pop()
        if e in seen:
            continue
        seen.append(e)
        todo.extend(a for a in e.args if isinstance(a, BaseException))
        reason = getattr(e, "reason", None)
        if isinstance(reason, BaseException):
            todo.append(reason)
        if e.__cause__ is not None:
            todo.append(e.__cause__)
        if e.__context__ is not None:
            todo.append(e.__context__)
    return seen


def _is_timeout(e: BaseException, kind: type[BaseException]) -> bool:
    # urllib3's NewConnectionError (refused, unresolvable) subclasses ConnectTimeoutError.
    return isinstance(e, kind) and not isinstance(e, urllib3.exceptions.NewConnectionError)


def _timed_out(exc: BaseException) -> bool:
    return any(_is_timeout(e, urllib3.exceptions.TimeoutError) for e in _chain(exc))


def _connect_timeout(exc: BaseException) -> bool:
    return any(_is_timeout(e, urllib3.exceptions.ConnectTimeoutError) for e in _chain(exc))


def _connect_reason(exc: BaseException) -> str:
    for e in _chain(exc):
        if isinstance(e, ConnectionRefusedError):
            return "connection refused"
        if isinstance(e, urllib3.exceptions.NameResolutionError):
            return "name not resolved"
        if isinstance(e, (ConnectionResetError, urllib3.exceptions.ProtocolError)):
            return "connection closed by the server"
    return type(exc).__name__

"""Slack: a Block Kit message per incident event, sent with slack-sdk.

Query names, domains and even pod names are attacker-controlled. They only ever appear inside
inline code spans (`text.slack_code`) or plain_text objects, every mrkdwn object is `verbatim`
(no auto-linking of URLs, channels or mentions), and `&<>` are entities, so `<!channel>`,
`<http://x|y>` and `*bold*` arrive as the literal characters.
"""

from __future__ import annotations

import logging
import random
import time
from pathlib import Path
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.handler import RetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.webhook import WebhookClient

from watcher.config import Config, SlackConfig
from watcher.errors import ConfigError, DeliveryError
from watcher.incidents import Incident
from watcher.notify import message
from watcher.text import slack_code, slack_escape

SEVERITY_ICON = {"critical": "\U0001f534", "warning": "\U0001f7e0", "info": "\u26aa"}
RESOLVED_ICON = "\u2705"
# slack-sdk logs request failures itself; keep them (and any URL) out of our stderr.
_quiet = logging.getLogger("dnswatch.slack-sdk")
_quiet.addHandler(logging.NullHandler())
_quiet.propagate = False


def _mrkdwn(text: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": text, "verbatim": True}


def render(incident: Incident, event: str, cfg: Config) -> dict[str, Any]:
    """The chat.postMessage / webhook payload for one incident event."""
    limit = cfg.output.max_name_chars
    head = message.title(str(incident.finding.get("kind", incident.kind)))
    src = slack_code(incident.channel, limit)
    session = incident.finding.get("evidence", {}).get("session_domains") or {}
    dom = (
        slack_code(incident.domain, limit)
        if incident.domain
        else ", ".join(slack_code(str(d), limit) for d in list(session)[:3])
        + (f" _+{len(session) - 3} more rare domains_" if len(session) > 3 else "")
        if session
        else "_(source-wide)_"
    )
    if event == "resolved":
        icon, word = RESOLVED_ICON, "RESOLVED"
    else:
        icon, word = SEVERITY_ICON.get(incident.severity, ""), incident.severity.upper()
    header = f"{icon} {word} \u00b7 {head} ({message.EVENT_WORDS.get(event, event)})"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": header[:150], "emoji": False}},
    ]
    fields = [_mrkdwn(f"*Workload*\n{src}"), _mrkdwn(f"*Domain*\n{dom}")]
    fields.append(_mrkdwn(f"*Pods*\n{slack_code(message.pods(incident), 3 * limit)}"))
    if event == "resolved":
        fields.append(_mrkdwn(f"*First seen*\n{message.when(incident.first_seen)}"))
        fields.append(_mrkdwn(f"*Last seen*\n{message.when(incident.last_seen)}"))
        blocks.append({"type": "section", "fields": fields})
    else:
        for label, value in message.figures(incident)[:7]:
            fields.append(_mrkdwn(f"*{label}*\n{slack_escape(value)}"))
        blocks.append({"type": "section", "fields": fields[:10]})
        summary = str(incident.finding.get("summary", ""))
        # plain_text: no formatting, links or mentions are parsed in it at all.
        blocks.append(
            {
                "type": "section",
                "text": {"type": "plain_text", "text": summary[:2900] or head, "emoji": False},
            }
        )
        names = message.sample_names(incident, cfg.output.sample_names)
        if names:
            shown = "\n".join(slack_code(n, limit) for n in names)
            blocks.append({"type": "section", "text": _mrkdwn(f"*Sample names*\n{shown}")})
        steps = "\n".join(slack_code(s, 300) for s in message.next_steps(incident))
        blocks.append({"type": "section", "text": _mrkdwn(f"*Next step*\n{steps}")})
    buttons: list[dict[str, Any]] = []
    link = message.grafana_link(cfg.grafana, incident)
    if link:
        buttons.append(_button("Open in Grafana", link))
    runbook = cfg.alertmanager.runbook_url or cfg.links.runbook("DNSExfiltrationSuspected")
    if runbook.startswith(("http://", "https://")):
        buttons.append(_button("Runbook", runbook))
    if buttons:
        blocks.append({"type": "actions", "elements": buttons})
    elif event != "resolved":
        # No docs URL configured: say where the runbook is rather than link a made-up address.
        blocks.append(
            {
                "type": "context",
                "elements": [
                    _mrkdwn(f"Runbook: {slack_code(runbook, 300)} in the dnswatch repository")
                ],
            }
        )
    blocks.append(
        {
            "type": "context",
            "elements": [
                _mrkdwn(
                    f"dnswatch \u00b7 {incident.kind} \u00b7 first seen "
                    f"{message.when(incident.first_seen)}"
                )
            ],
        }
    )
    fallback = f"{word} {head}: workload {incident.channel}" + (
        f", domain {incident.domain}" if incident.domain else ""
    )
    return {
        # The notification text: escaped entities, no code spans needed (not rendered as mrkdwn
        # when blocks are present, but shown in notifications and screen readers).
        "text": slack_escape(fallback)[:300],
        "blocks": blocks,
        "unfurl_links": False,
        "unfurl_media": False,
    }


def _button(text: str, url: str) -> dict[str, Any]:
    return {"type": "button", "text": {"type": "plain_text", "text": text}, "url": url[:3000]}


class BoundedRetry(RetryHandler):
    """Retry 429 after Retry-After, 5xx and connection errors with backoff, within a deadline.

    slack-sdk's own 429 handler would sleep whatever Retry-After says; a CronJob must not hang,
    so a wait past the deadline gives up and the message stays pending for the next run.
    """

    def __init__(self, max_retry_count: int, budget: float) -> None:
        super().__init__(max_retry_count=max_retry_count)
        self.budget = budget
        self.deadline = time.monotonic() + budget

    def reset(self) -> None:
        self.deadline = time.monotonic() + self.budget

    def _wait(self, state: RetryState, response: HttpResponse | None) -> float:
        if response is not None and response.status_code == 429:
            for name, values in response.headers.items():
                if name.lower() == "retry-after":
                    try:
                        return max(0.0, float(values[0]))
                    except (ValueError, IndexError):
                        break
            return 1.0
        return min(8.0, 0.5 * 2.0 ** int(state.current_attempt)) * (1 + random.random() / 4)

    def _can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if response is not None:
            retryable = response.status_code == 429 or response.status_code >= 500
        else:
            retryable = error is not None
        if not retryable:
            return False
        return time.monotonic() + self._wait(state, response) < self.deadline

    def prepare_for_next_attempt(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> None:
        state.next_attempt_requested = True
        time.sleep(self._wait(state, response))
        state.increment_current_attempt()


def _secret(value: Any, path: str | None, what: str) -> str | None:
    if value is not None:
        text = str(value.get_secret_value()).strip()
        return text or None
    if path:
        try:
            text = Path(path).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or type(exc).__name__
            raise ConfigError(f"cannot read {what} file {path}: {reason}") from None
        return text or None
    return None


class SlackChannel:
    """Webhook or bot token; `send` raises DeliveryError with a secret-free one-line reason."""

    name = "slack"

    def __init__(self, cfg: SlackConfig) -> None:
        self.webhook = _secret(cfg.webhook_url, cfg.webhook_url_file, "Slack webhook URL")
        token = _secret(cfg.token, cfg.token_file, "Slack token")
        if self.webhook and token:
            raise ConfigError("slack: set a webhook URL or a token with a channel, not both")
        if token and not cfg.channel:
            raise ConfigError("slack: a token needs a channel (DNSWATCH_SLACK_CHANNEL)")
        if self.webhook and not self.webhook.startswith(("https://", "http://")):
            raise ConfigError("slack: the webhook URL must start with https://")
        self.secrets = [s for s in (self.webhook, token) if s]
        self.retry = BoundedRetry(cfg.retries, cfg.give_up_after)
        timeout = max(1, round(cfg.timeout))
        self.channel = cfg.channel
        self.web: WebClient | None = None
        self.hook: WebhookClient | None = None
        if token:
            self.web = WebClient(
                token=token,
                base_url=cfg.base_url,
                timeout=timeout,
                retry_handlers=[self.retry],
                logger=_quiet,
            )
        elif self.webhook:
            self.hook = WebhookClient(
                self.webhook, timeout=timeout, retry_handlers=[self.retry], logger=_quiet
            )

    @staticmethod
    def configured(cfg: SlackConfig) -> bool:
        return any((cfg.webhook_url, cfg.webhook_url_file, cfg.token, cfg.token_file))

    def _redact(self, text: str) -> str:
        for s in self.secrets:
            text = text.replace(s, "***")
        return text.replace("\n", " ")[:300]

    def send(self, payload: dict[str, Any]) -> None:
        self.retry.reset()
        try:
            if self.web is not None:
                try:
                    self.web.chat_postMessage(channel=self.channel or "", **payload)
                except SlackApiError as exc:
                    code = exc.response.status_code
                    err = exc.response.get("error") if isinstance(exc.response.data, dict) else ""
                    raise DeliveryError(f"slack chat.postMessage: HTTP {code} {err}") from None
                return
            assert self.hook is not None
            resp = self.hook.send_dict(payload)
        except DeliveryError:
            raise
        except Exception as exc:  # noqa: BLE001 - transport errors: one redacted line
            raise DeliveryError(f"slack: {type(exc).__name__}: {self._redact(str(exc))}") from None
        body = (resp.body or "").strip()
        if resp.status_code != 200 or body != "ok":
            raise DeliveryError(
                f"slack webhook: HTTP {resp.status_code} {self._redact(body)[:80]}".rstrip()
            )

from __future__ import annotations

from pathlib import Path

import pytest

from watcher.config import Config, load_config
from watcher.errors import ConfigError


def test_defaults_load_and_every_field_is_explained() -> None:
    cfg = load_config(environ={})
    assert cfg.windows.short == 600 and cfg.windows.long == 21600
    missing = [
        f"{section}.{name}"
        for section, field in Config.model_fields.items()
        for name, sub in field.annotation.model_fields.items()  # type: ignore[union-attr]
        if not sub.description
    ]
    assert not missing


def test_file_then_env(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("windows:\n  short: 15m\nburst:\n  short_min_distinct: 50\n")
    cfg = load_config(
        f,
        environ={
            "DNSWATCH_BURST__SHORT_MIN_DISTINCT": "60",
            "DNSWATCH_PROMETHEUS_URL": "http://127.0.0.1:9090",
            "DNSWATCH_ALLOWLIST__SUFFIXES": "[corp.example, lab.example]",
        },
    )
    assert cfg.windows.short == 900
    assert cfg.burst.short_min_distinct == 60
    assert cfg.prometheus.url == "http://127.0.0.1:9090"
    assert cfg.allowlist.suffixes == ["corp.example", "lab.example"]


def test_bounds_are_checked() -> None:
    with pytest.raises(ConfigError, match=r"names\.min_score"):
        load_config(environ={"DNSWATCH_NAMES__MIN_SCORE": "3"})


def test_secrets_are_not_config_fields() -> None:
    fields = set(Config.model_fields["prometheus"].annotation.model_fields)  # type: ignore[union-attr]
    assert not {"token", "password", "bearer_token"} & fields


def test_the_day_window_is_off_with_0_and_must_outlast_the_long_one(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("windows:\n  day: off\n")
    assert load_config(f, environ={}).windows.day == 0
    f.write_text("windows:\n  day: 3h\n")
    with pytest.raises(ConfigError, match="day must be longer than long"):
        load_config(f, environ={})


def test_windows_read_as_people_write_them() -> None:
    from watcher.duration import human_duration

    assert [human_duration(s) for s in (21600, 600, 90, 86400, 86340, 5400)] == [
        "6h",
        "10m",
        "90s",
        "1d",
        "23h59m",  # a day window over a file a minute short of a day: not "1439m"
        "1h30m",
    ]

"""traitlets' "Config changed" DEBUG line names the configured sections, never their values."""

from __future__ import annotations

import logging

from traitlets.config import Application, Config

from visa_hub.logsafe import ConfigSectionsOnly, keep_config_out_of_log


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_isolation_an_application_at_debug_logs_no_config_value():
    app = Application()
    app.log_level = logging.DEBUG
    collected = Collect()
    app.log.addHandler(collected)
    try:
        app.config = Config({"Before": {"token": "logged-before-the-filter"}})
        assert any("logged-before-the-filter" in line for line in collected.lines)  # what traitlets does
        keep_config_out_of_log(app.log)
        keep_config_out_of_log(app.log)  # idempotent
        app.config = Config({"CryptKeeper": {"keys": [b"0123456789abcdef-secret"]},
                             "GraphQLUserOffice": {"token": "uo-secret"}})
    finally:
        app.log.removeHandler(collected)
    assert "Config changed (values not logged): CryptKeeper, GraphQLUserOffice" in collected.lines
    assert not any("secret" in line for line in collected.lines)
    assert sum(isinstance(f, ConfigSectionsOnly) for f in app.log.filters) == 1

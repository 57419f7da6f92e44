"""The top-level help reads like the data flow."""

from __future__ import annotations

import re

from pigeon.cli._app import FLOW


def test_help_lists_the_stages_in_data_flow_order(cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    result = cli("--help")
    assert result.exit_code == 0
    listed = [m.group(1) for m in re.finditer(r"^│ ([a-z]+) ", result.stdout, flags=re.M)]
    assert listed == list(FLOW)

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


def test_version(cli):
    import pigeon

    result = cli("--version")
    assert result.exit_code == 0 and result.stdout.strip() == f"pigeon {pigeon.__version__}"


def test_user_errors_show_a_traceback_only_with_pigeon_debug(cli, tmp_path, monkeypatch):
    args = ("evaluate", "-p", tmp_path / "none.csv", "-t", tmp_path / "none.parquet", "-o", tmp_path / "r")
    monkeypatch.delenv("PIGEON_DEBUG", raising=False)
    plain = cli(*args)
    assert plain.exit_code == 2 and "Traceback" not in plain.stderr
    monkeypatch.setenv("PIGEON_DEBUG", "1")
    debug = cli(*args)
    assert debug.exit_code == 2
    assert "Traceback (most recent call last)" in debug.stderr and "ArtifactNotFoundError" in debug.stderr
    assert debug.stderr.strip().splitlines()[-1] == plain.stderr.strip()  # the same one-line error, last

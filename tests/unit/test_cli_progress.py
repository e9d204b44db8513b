"""Progress output of the CLI: plain lines when not on a terminal, a rich bar on one."""

from __future__ import annotations

import rich.console

from eqi import cli


def test_plain_lines_off_a_terminal(capsys) -> None:
    with cli._progress() as progress:
        assert progress is cli._echo
        progress("done a 2022 in 1.0 s")
    assert capsys.readouterr().out == "done a 2022 in 1.0 s\n"


def test_a_progress_bar_on_a_terminal(monkeypatch, capsys) -> None:
    monkeypatch.setattr(rich.console.Console, "is_terminal", property(lambda self: True))
    with cli._progress() as progress:
        assert progress is not cli._echo
        progress("done a 2022 in 1.0 s")
        progress("report a 2022: x.html")
    out = capsys.readouterr().out
    assert "done a 2022 in 1.0 s" in out and "report a 2022: x.html" in out

"""Log handlers of the ``eqi`` command: console and log file, text or JSON lines, secrets redacted.

* Console: records of the ``eqi`` loggers at INFO and above; INFO (progress) to stdout, WARNING and
  above to stderr.  Text: the message alone (``warning: ...`` / ``error: ...`` for those levels).
* Log file (``--log-file``, appended): every record at the chosen level, in the chosen format; the
  console then shows only warnings, errors and the summary line.
* JSON: one object a line with ``time`` (UTC, ISO 8601, ms), ``level``, ``logger``, ``message``,
  and the task fields a record carries (``task``, ``region``, ``year``, ``tile``, ``status``,
  ``seconds``, ``summary``, ``exit_code``: attributes ``eqi_<name>`` given as ``extra``), plus
  ``exception`` (the traceback text) when there is one.

Every handler has a :class:`~eqi.io.redact.RedactingFilter`.  A record with
``eqi_console=False`` goes to the log file only (per-task records that repeat a progress line);
one with ``eqi_stream="stdout"`` goes to stdout whatever its level (the summary line).
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import sys
from pathlib import Path
from typing import Any, Literal

from eqi.errors import ConfigError
from eqi.io.redact import RedactingFilter

__all__ = ["JsonFormatter", "TextFormatter", "configure_logging", "LogFormat"]

LogFormat = Literal["text", "json"]
_TAG = "_eqi_handler"
_PREFIX = "eqi_"
_SKIP = {"eqi_console", "eqi_stream"}


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k[len(_PREFIX):]: v for k, v in vars(record).items() if k.startswith(_PREFIX) and k not in _SKIP}


def _time(record: logging.LogRecord) -> str:
    stamp = _dt.datetime.fromtimestamp(record.created, _dt.UTC)
    return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JsonFormatter(logging.Formatter):
    """One JSON object per record (see the module docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": _time(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **_fields(record),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            data["exception"] = record.exc_text
        return json.dumps(data, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """``time LEVEL logger: message [field=value ...]`` (log file), or the bare message with a
    ``warning:`` / ``error:`` prefix (console, ``bare=True``)."""

    def __init__(self, *, bare: bool = False) -> None:
        super().__init__()
        self.bare = bare

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if self.bare:
            if record.levelno >= logging.WARNING and getattr(record, "eqi_stream", None) != "stdout":
                message = f"{record.levelname.lower()}: {message}"
        else:
            fields = " ".join(f"{k}={v}" for k, v in _fields(record).items() if k != "summary")
            message = f"{_time(record)} {record.levelname} {record.name}: {message}" + (f" [{fields}]" if fields else "")
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            message = f"{message}\n{record.exc_text}"
        return message


class _ConsoleHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """stdout or stderr looked up at each record (so test capture and redirection work)."""

    def __init__(self, which: Literal["stdout", "stderr"], *, only_stdout_marked: bool = False) -> None:
        super().__init__()
        self.which = which
        self.only_marked = only_stdout_marked

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stdout if self.which == "stdout" else sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:  # StreamHandler.__init__ assigns it
        pass

    def filter(self, record: logging.LogRecord) -> bool:  # type: ignore[override]
        if getattr(record, "eqi_console", True) is False:
            return False
        to_stdout = getattr(record, "eqi_stream", None) == "stdout"
        if self.which == "stdout":
            ok = to_stdout or (record.levelno < logging.WARNING and not self.only_marked)
        else:
            ok = not to_stdout and record.levelno >= logging.WARNING
        return ok and super().filter(record)


def configure_logging(
    *, log_file: str | Path | None = None, fmt: LogFormat = "text", level: str = "info",
) -> None:
    """(Re)install eqi's handlers on the root logger; earlier eqi handlers are removed.

    The ``eqi`` loggers log at ``level``; other libraries at WARNING.  Raises
    :class:`~eqi.errors.ConfigError` when the log file cannot be opened.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, _TAG, False):
            root.removeHandler(handler)
            handler.close()
    root.setLevel(logging.WARNING)
    numeric = getattr(logging, level.upper(), logging.INFO)
    logging.getLogger("eqi").setLevel(numeric)
    handlers: list[logging.Handler] = []
    file_fmt: logging.Formatter = JsonFormatter() if fmt == "json" else TextFormatter()
    if log_file is not None:
        path = Path(log_file).expanduser()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fh = logging.FileHandler(path, mode="a", encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot open the log file {path}: {exc.strerror or exc}; choose another --log-file") from None
        fh.setFormatter(file_fmt)
        fh.setLevel(numeric)
        handlers.append(fh)
        console_fmt: logging.Formatter = TextFormatter(bare=True)
        out = _ConsoleHandler("stdout", only_stdout_marked=True)
    else:
        console_fmt = JsonFormatter() if fmt == "json" else TextFormatter(bare=True)
        out = _ConsoleHandler("stdout")
    err = _ConsoleHandler("stderr")
    for h in (out, err):
        h.setFormatter(console_fmt)
        h.setLevel(min(numeric, logging.INFO))
        handlers.append(h)
    for h in handlers:
        h.addFilter(RedactingFilter())
        setattr(h, _TAG, True)
        root.addHandler(h)

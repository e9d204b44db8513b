"""Sentinel Hub OAuth client credentials: where they come from (and that they go nowhere else).

Order of precedence, first match wins:

1. a credentials file named by the source (``?credentials=FILE``) or by ``EQI_SH_CREDENTIALS``;
2. the environment variables ``SH_CLIENT_ID`` and ``SH_CLIENT_SECRET`` (the sentinelhub
   package's own names);
3. the sentinelhub package's configuration file (``$XDG_CONFIG_HOME/sentinelhub/config.toml``,
   default ``~/.config/sentinelhub/config.toml``), profile ``SH_PROFILE`` or ``default-profile``.

A credentials file is TOML: ``sh_client_id`` / ``sh_client_secret`` (or ``client_id`` /
``client_secret``) at the top level or in a profile table (the sentinelhub ``config.toml``
layout); it may also set ``sh_base_url`` and ``sh_token_url``.  A file that group or others can
read (``mode & 0o077``) is refused.  The secret is never part of a message, a ``repr`` or a log.
"""

from __future__ import annotations

import os
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eqi.errors import ConfigError
from eqi.io.redact import register_secret

__all__ = [
    "Credentials",
    "find_credentials",
    "read_credentials_file",
    "sentinelhub_config_path",
    "ENV_CLIENT_ID",
    "ENV_CLIENT_SECRET",
    "ENV_CREDENTIALS_FILE",
]

ENV_CLIENT_ID = "SH_CLIENT_ID"
ENV_CLIENT_SECRET = "SH_CLIENT_SECRET"
ENV_CREDENTIALS_FILE = "EQI_SH_CREDENTIALS"
ENV_PROFILE = "SH_PROFILE"
DEFAULT_PROFILE = "default-profile"
_ID_KEYS = ("sh_client_id", "client_id")
_SECRET_KEYS = ("sh_client_secret", "client_secret")


@dataclass(frozen=True)
class Credentials:
    """An OAuth client id and secret, and where they were read (for messages)."""

    client_id: str
    client_secret: str = field(repr=False)
    origin: str  # "environment variables SH_CLIENT_ID / SH_CLIENT_SECRET" or "file /path"
    base_url: str | None = None  # deployment named by a credentials file, if any
    token_url: str | None = None

    def __post_init__(self) -> None:
        register_secret(self.client_secret)  # redacted from every log line and file from now on

    def __str__(self) -> str:
        return f"Sentinel Hub client {self.client_id} (from {self.origin})"


def sentinelhub_config_path(environ: Mapping[str, str] | None = None) -> Path:
    """Where the sentinelhub package keeps its ``config.toml`` (same rule as ``SHConfig``)."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")
    return Path(base) / "sentinelhub" / "config.toml"


def _first(table: Mapping[str, Any], keys: tuple[str, ...]) -> str:
    for key in keys:
        value = table.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return ""


def _check_private(path: Path) -> None:
    try:
        info = path.stat()
    except OSError as err:
        raise ConfigError(
            f"Sentinel Hub credentials file {path} cannot be read ({err.strerror}); "
            "give an existing file or set SH_CLIENT_ID and SH_CLIENT_SECRET"
        ) from None
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(f"Sentinel Hub credentials file {path} is not a regular file")
    if info.st_mode & 0o077:
        raise ConfigError(
            f"Sentinel Hub credentials file {path} can be read by other users (mode "
            f"{stat.S_IMODE(info.st_mode):04o}); it holds a client secret, so eqi refuses it. "
            f"Make it private with: chmod 600 {path}"
        )


def read_credentials_file(
    path: str | Path, profile: str | None = None, environ: Mapping[str, str] | None = None
) -> Credentials:
    """Credentials from a private TOML file (see the module docstring); :class:`ConfigError` else."""
    env = os.environ if environ is None else environ
    path = Path(path).expanduser()
    _check_private(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"Sentinel Hub credentials file {path} cannot be read ({err})") from None
    except tomllib.TOMLDecodeError as err:  # the message gives a position, not the content
        raise ConfigError(f"Sentinel Hub credentials file {path} is not valid TOML ({err})") from None
    table: Mapping[str, Any] = data
    if not _first(data, _ID_KEYS):
        name = profile or env.get(ENV_PROFILE) or DEFAULT_PROFILE
        tables = {k: v for k, v in data.items() if isinstance(v, dict)}
        if name in tables:
            table = tables[name]
        elif len(tables) == 1 and profile is None:
            table = next(iter(tables.values()))
        else:
            raise ConfigError(
                f"Sentinel Hub credentials file {path} has no profile '{name}' "
                f"(profiles: {', '.join(sorted(tables)) or 'none'}); choose one with ?profile=NAME"
            )
    client_id, secret = _first(table, _ID_KEYS), _first(table, _SECRET_KEYS)
    if not client_id or not secret:
        missing = "sh_client_id" if not client_id else "sh_client_secret"
        raise ConfigError(f"Sentinel Hub credentials file {path} lacks '{missing}'")
    return Credentials(
        client_id=client_id,
        client_secret=secret,
        origin=f"file {path}",
        base_url=_first(table, ("sh_base_url",)) or None,
        token_url=_first(table, ("sh_token_url",)) or None,
    )


def _holds_secret(path: Path) -> bool:
    """Whether a TOML file sets a client secret anywhere (sentinelhub writes an empty default)."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return True  # let read_credentials_file report it
    tables = [data, *(v for v in data.values() if isinstance(v, dict))]
    return any(_first(t, _SECRET_KEYS) for t in tables)


def find_credentials(
    file: str | Path | None = None,
    *,
    profile: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> Credentials:
    """The credentials to use, by the precedence in the module docstring, or :class:`ConfigError`."""
    env = os.environ if environ is None else environ
    named = file or env.get(ENV_CREDENTIALS_FILE)
    if named:
        return read_credentials_file(named, profile, env)
    client_id = env.get(ENV_CLIENT_ID, "").strip()
    secret = env.get(ENV_CLIENT_SECRET, "").strip()
    if client_id and secret:
        return Credentials(
            client_id=client_id,
            client_secret=secret,
            origin=f"environment variables {ENV_CLIENT_ID} / {ENV_CLIENT_SECRET}",
        )
    if client_id or secret:
        missing = ENV_CLIENT_SECRET if client_id else ENV_CLIENT_ID
        raise ConfigError(
            f"{ENV_CLIENT_ID if client_id else ENV_CLIENT_SECRET} is set but {missing} is not; "
            "set both (Sentinel Hub OAuth client id and secret)"
        )
    default = sentinelhub_config_path(env)
    if default.is_file() and _holds_secret(default):
        return read_credentials_file(default, profile, env)
    raise ConfigError(
        "no Sentinel Hub credentials found: set SH_CLIENT_ID and SH_CLIENT_SECRET, or give a "
        f"private TOML file with sh_client_id / sh_client_secret via {ENV_CREDENTIALS_FILE} or "
        f"the source option ?credentials=FILE (looked also in {default}); see docs/sentinelhub.md"
    )

"""The ``sentinelhub://`` source string: which deployment, and the options of a Sentinel Hub source.

Forms (the run config's ``source`` or ``--source``)::

    sentinelhub://                          deployment from the credentials file, else sentinel-hub.com
    sentinelhub://cdse                      Copernicus Data Space Ecosystem (sh.dataspace.copernicus.eu)
    sentinelhub://sentinel-hub              Sinergise/Planet Sentinel Hub (services.sentinel-hub.com)
    sentinelhub://HOST[:PORT][/PREFIX]      any deployment over https
    sentinelhub+http://127.0.0.1:PORT       plain http (a local test server)

Options as a query string, e.g. ``sentinelhub://cdse?credentials=~/.eqi/sh.toml&cache=/data/sh``:
``credentials`` (TOML file), ``profile`` (table of that file), ``token_url``, ``cache`` (request
cache folder), ``utm_resolution`` (metres, see :mod:`eqi.io.catalog.sentinelhub.process`).
The string holds no secret: credentials come from the environment or a file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from eqi.errors import ConfigError

__all__ = [
    "SourceSpec",
    "parse_source",
    "is_sentinelhub_source",
    "token_url_for",
    "SCHEMES",
    "SENTINEL_HUB_URL",
    "CDSE_URL",
]

SCHEMES = ("sentinelhub", "sentinelhub+https", "sentinelhub+http")
SENTINEL_HUB_URL = "https://services.sentinel-hub.com"
CDSE_URL = "https://sh.dataspace.copernicus.eu"
_SH_TOKEN = "https://services.sentinel-hub.com/auth/realms/main/protocol/openid-connect/token"
_CDSE_TOKEN = "https://identity.dataspace.copernicus.eu/auth/realms/CDSE/protocol/openid-connect/token"
_TOKEN_URLS = {
    "services.sentinel-hub.com": _SH_TOKEN,
    "services-uswest2.sentinel-hub.com": _SH_TOKEN,
    "creodias.sentinel-hub.com": _SH_TOKEN,
    "sh.dataspace.copernicus.eu": _CDSE_TOKEN,
}
_ALIASES = {"cdse": CDSE_URL, "sentinel-hub": SENTINEL_HUB_URL, "sentinelhub": SENTINEL_HUB_URL}
_OPTIONS = ("credentials", "profile", "token_url", "cache", "utm_resolution")


@dataclass(frozen=True)
class SourceSpec:
    """A parsed ``sentinelhub://`` source (``base_url`` None: take it from the credentials)."""

    text: str
    base_url: str | None
    token_url: str | None
    credentials_file: Path | None
    profile: str | None
    cache_dir: Path | None
    utm_resolution: float | None


def is_sentinelhub_source(source: object) -> bool:
    """Whether ``source`` names a Sentinel Hub deployment (``sentinelhub://...``)."""
    text = str(source).strip().lower()
    return any(text.startswith(f"{scheme}://") for scheme in SCHEMES)


def token_url_for(base_url: str) -> str:
    """The OAuth token endpoint of a deployment: the known ones, else ``BASE/oauth/token``."""
    host = urlsplit(base_url).netloc.lower()
    return _TOKEN_URLS.get(host, f"{base_url.rstrip('/')}/oauth/token")


def parse_source(source: str) -> SourceSpec:
    """Parse a ``sentinelhub://`` source string, or raise :class:`ConfigError` naming the problem."""
    text = str(source).strip()
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise ConfigError(f"source '{text}' is not a Sentinel Hub source (sentinelhub://...)")
    query = parse_qs(parts.query, keep_blank_values=True)
    unknown = sorted(set(query) - set(_OPTIONS))
    if unknown:
        raise ConfigError(
            f"source '{text}': unknown option(s) {', '.join(unknown)}; "
            f"a sentinelhub:// source takes {', '.join(_OPTIONS)}"
        )
    options = {k: v[-1] for k, v in query.items()}
    host = parts.netloc
    if host.lower() in _ALIASES and not parts.path.strip("/"):
        if scheme == "sentinelhub+http":
            raise ConfigError(f"source '{text}': {host} is served over https only")
        base_url: str | None = _ALIASES[host.lower()]
    elif host:
        protocol = "http" if scheme == "sentinelhub+http" else "https"
        base_url = f"{protocol}://{host}{parts.path.rstrip('/')}"
    else:
        base_url = None
    resolution = None
    if options.get("utm_resolution"):
        try:
            resolution = float(options["utm_resolution"])
        except ValueError:
            resolution = -1.0
        if not 0 < resolution <= 1000:
            raise ConfigError(
                f"source '{text}': utm_resolution must be a pixel size in metres (e.g. 20)"
            )
    credentials = options.get("credentials") or None
    cache = options.get("cache") or None
    return SourceSpec(
        text=text,
        base_url=base_url,
        token_url=options.get("token_url") or None,
        credentials_file=Path(credentials).expanduser() if credentials else None,
        profile=options.get("profile") or None,
        cache_dir=Path(cache).expanduser() if cache else None,
        utm_resolution=resolution,
    )

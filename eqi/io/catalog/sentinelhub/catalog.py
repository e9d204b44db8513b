"""Sentinel Hub as a scene source: Catalog API search, Process API pixels, a request cache.

:class:`SentinelHubCatalog` is an eqi :class:`~eqi.io.catalog.base.Catalog` (``search``) with one
more step, ``materialize(items, geobox, bands)``: Sentinel Hub has no files to read, so for each
acquisition and the tile's GeoBox it sends one Process API request (or finds its answer in the
cache) and returns items whose assets are local single-band GeoTIFFs, keyed like any
``sentinel-2-l2a`` item (``red``, ``nir``, ... ``scl``).  The sentinelhub package does the OAuth
session (token refreshed before it expires), the Catalog paging (``next`` token) and the waiting
on HTTP 429 (``Retry-After``, which Sentinel Hub gives in milliseconds).

Errors: credentials the token endpoint refuses -> :class:`~eqi.errors.ConfigError` naming where
they were read (environment variable names or file path); a service that cannot be reached or
answers an error -> :class:`~eqi.errors.SourceError` naming the URL and status.  No message, log
record or file written here contains the client secret or a token.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import warnings
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pystac

from eqi.errors import BandError, ConfigError, SourceError
from eqi.io.catalog.base import BBox, check_bbox, check_collections_arg, parse_interval, sort_items
from eqi.io.catalog.sentinelhub.credentials import Credentials, find_credentials
from eqi.io.catalog.sentinelhub.items import (
    EQI_COLLECTIONS,
    acquisitions,
    band_item,
    feature_to_item,
)
from eqi.io.catalog.sentinelhub.process import (
    cache_key,
    cached_files,
    estimate_processing_units,
    ordered_bands,
    process_payload,
    request_grid,
    store_response,
)
from eqi.io.catalog.sentinelhub.source import SENTINEL_HUB_URL, parse_source, token_url_for
from eqi.sensors import check_bands, identify_sensor

if TYPE_CHECKING:
    from odc.geo.geobox import GeoBox

__all__ = ["SentinelHubCatalog", "default_cache_dir", "ENV_CACHE"]

log = logging.getLogger("eqi.sentinelhub")

ENV_CACHE = "EQI_SH_CACHE"
MAX_REQUEST_PX = 2500  # Process API limit on output width and height
_S2_START = datetime(2015, 6, 23, tzinfo=UTC)  # Sentinel-2A launch: the start of open intervals
_AUTH_STATUS = (400, 401, 403)


def default_cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``$EQI_SH_CACHE``, else ``$XDG_CACHE_HOME/eqi/sentinelhub`` (``~/.cache/eqi/sentinelhub``)."""
    env = os.environ if environ is None else environ
    if env.get(ENV_CACHE):
        return Path(env[ENV_CACHE]).expanduser()
    base = env.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "eqi" / "sentinelhub"


def _quiet_oauth_loggers() -> None:
    """requests-oauthlib logs token request bodies (the secret) and tokens at DEBUG: keep it quiet."""
    for name in ("requests_oauthlib", "oauthlib"):
        logger = logging.getLogger(name)
        if logger.level < logging.WARNING:
            logger.setLevel(logging.WARNING)


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_transport(url: str, what: str) -> None:
    """https everywhere; plain http only to this machine (a local test server)."""
    parts = urlsplit(url)
    if parts.scheme == "https":
        return
    if parts.scheme == "http" and _is_loopback(parts.hostname):
        # oauthlib refuses http token URLs unless told; only for loopback hosts
        os.environ.setdefault("OAUTHLIB_INSECURE_TRANSPORT", "1")
        return
    raise ConfigError(
        f"Sentinel Hub {what} {url} is not https; plain http is accepted only for 127.0.0.1 or "
        "localhost (a local test server), since it would send the secret unencrypted"
    )


def _status_of(err: BaseException) -> int | None:
    inner = getattr(err, "request_exception", None) or err
    response = getattr(inner, "response", None)
    return getattr(response, "status_code", None)


class SentinelHubCatalog:
    """Sentinel Hub (Catalog + Process API) as an eqi scene source.

    Parameters
    ----------
    source : ``sentinelhub://...`` string (see :mod:`eqi.io.catalog.sentinelhub.source`).
    cache_dir : request cache folder (default: the source's ``?cache=``, ``$EQI_SH_CACHE``, or
        ``~/.cache/eqi/sentinelhub``).
    credentials_file : TOML credentials file (overrides the source's ``?credentials=``).
    environ : environment to read credentials from (default ``os.environ``; tests pass their own).
    page_size : Catalog API features per page.
    rate_limit_retries : HTTP 429 answers waited out per request before giving up.
    timeout : seconds per HTTP request.
    retries, retry_sleep : attempts and first pause (s, x3 each time) on 5xx/connection errors.
    """

    def __init__(
        self,
        source: str,
        *,
        cache_dir: str | Path | None = None,
        credentials_file: str | Path | None = None,
        environ: Mapping[str, str] | None = None,
        page_size: int = 100,
        rate_limit_retries: int = 10,
        timeout: float = 120.0,
        retries: int = 4,
        retry_sleep: float = 2.0,
    ) -> None:
        spec = parse_source(source)
        self.source = spec.text
        self.credentials: Credentials = find_credentials(
            credentials_file or spec.credentials_file, profile=spec.profile, environ=environ
        )
        self.base_url = (spec.base_url or self.credentials.base_url or SENTINEL_HUB_URL).rstrip("/")
        from_file = self.credentials.token_url if spec.base_url is None else None
        self.token_url = spec.token_url or from_file or token_url_for(self.base_url)
        _check_transport(self.base_url, "base URL")
        _check_transport(self.token_url, "token URL")
        self.cache_dir = Path(cache_dir or spec.cache_dir or default_cache_dir(environ))
        self.utm_resolution = spec.utm_resolution
        self.page_size = int(page_size)
        _quiet_oauth_loggers()
        from sentinelhub import SHConfig

        # use_defaults: never read or write the user's ~/.config/sentinelhub/config.toml here
        self._config = SHConfig(
            use_defaults=True,
            sh_client_id=self.credentials.client_id,
            sh_client_secret=self.credentials.client_secret,
            sh_base_url=self.base_url,
            sh_token_url=self.token_url,
            max_retries=int(rate_limit_retries),
            download_timeout_seconds=float(timeout),
            max_download_attempts=int(retries),
            download_sleep_time=float(retry_sleep),
        )
        self._session: Any = None
        self._client: Any = None

    def __repr__(self) -> str:
        return f"SentinelHubCatalog({self.base_url!r}, client={self.credentials.client_id!r})"

    # ------------------------------------------------------------------------------- session

    def _redact(self, text: str) -> str:
        secret = self.credentials.client_secret
        return text.replace(secret, "***") if secret else text

    def _token_error(self, err: Exception) -> Exception:
        status = _status_of(err) or getattr(err, "status_code", None)
        oauth_error = getattr(err, "error", None)
        origin = self.credentials.origin
        if oauth_error or status in _AUTH_STATUS:
            what = f"'{oauth_error}'" if oauth_error else f"HTTP {status}"
            description = getattr(err, "description", None)
            detail = f" ({description})" if description else ""
            return ConfigError(
                self._redact(
                    f"Sentinel Hub refused the client credentials from {origin}: the token "
                    f"endpoint {self.token_url} answered {what}{detail}. Check the client id "
                    f"({self.credentials.client_id}) and secret, and that they belong to this "
                    f"deployment ({self.base_url}); see docs/sentinelhub.md"
                )
            )
        return SourceError(
            self._redact(
                f"Sentinel Hub token endpoint {self.token_url} could not be used "
                f"({type(err).__name__}: {str(err)[:200]}). Check the network and the URL, or "
                "retry later"
            )
        )

    def _download_client(self) -> Any:
        """The sentinelhub download client with this catalog's own OAuth session."""
        if self._client is None:
            from sentinelhub import SentinelHubDownloadClient, SentinelHubSession

            try:
                self._session = SentinelHubSession(config=self._config)
            except Exception as err:  # oauthlib, requests and sentinelhub errors alike
                raise self._token_error(err) from None
            self._client = SentinelHubDownloadClient(config=self._config, session=self._session)
        return self._client

    def _request_error(self, err: Exception, url: str, doing: str) -> Exception:
        from sentinelhub.exceptions import OutOfRequestsException

        if isinstance(err, OutOfRequestsException):
            return SourceError(
                f"Sentinel Hub {url} kept answering HTTP 429 (rate limit) while {doing}, "
                f"{self._config.max_retries} times; retry later or lower the request rate"
            )
        status = _status_of(err)
        if status in (401, 403):
            return ConfigError(
                f"Sentinel Hub {url} refused the token of client {self.credentials.client_id} "
                f"(from {self.credentials.origin}) with HTTP {status} while {doing}: the account "
                "may lack access to this API or collection"
            )
        detail = str(err).strip().replace("\n", " ")[:400]
        hint = "retry later" if status is None or status >= 500 else "check the request"
        return SourceError(
            self._redact(
                f"Sentinel Hub {url} failed while {doing}"
                + (f" (HTTP {status})" if status else "")
                + f": {detail or type(err).__name__}; {hint}"
            )
        )

    def check(self) -> str:
        """Get a token now (credentials accepted?) and say so; :class:`ConfigError` if refused.

        For ``eqi validate`` and the plan check, before any computation or output folder."""
        self._download_client()
        return (
            f"Sentinel Hub {self.base_url}: client {self.credentials.client_id} "
            f"(from {self.credentials.origin}) accepted"
        )

    # -------------------------------------------------------------------------------- search

    def search(
        self,
        *,
        bbox: BBox,
        datetime: str,
        collections: list[str],
        limit: int | None = None,
    ) -> list[pystac.Item]:
        """Catalog API search; see :meth:`eqi.io.catalog.base.Catalog.search`.

        Items carry ``s2:processing_baseline`` from the product id and no assets; pass them to
        :meth:`materialize` for pixels.
        """
        box = check_bbox(bbox)
        start, end = parse_interval(datetime)
        wanted = check_collections_arg(collections)
        unsupported = [c for c in wanted if c not in EQI_COLLECTIONS]
        if unsupported:
            raise ConfigError(
                f"a Sentinel Hub source serves {', '.join(EQI_COLLECTIONS)} only; remove "
                f"{', '.join(unsupported)} from the collections or use another source for them"
            )
        from sentinelhub import CRS
        from sentinelhub import BBox as ShBBox
        from sentinelhub import SentinelHubCatalog as ShCatalog

        client = self._download_client()
        catalog = ShCatalog(config=self._config)
        catalog.client = client  # share the session (one token for search and process)
        interval = (start or _S2_START, end or datetime_now())
        found: list[pystac.Item] = []
        for collection in wanted:
            url = f"{catalog.service_url}/search"
            try:
                features = catalog.search(
                    EQI_COLLECTIONS[collection],
                    time=interval,
                    bbox=ShBBox(box, crs=CRS.WGS84),
                    limit=min(self.page_size, limit) if limit else self.page_size,
                )
                rows = list(islice(features, limit)) if limit else list(features)
            except (ConfigError, SourceError):
                raise
            except Exception as err:
                raise self._request_error(err, url, "searching") from None
            found.extend(feature_to_item(row, collection) for row in rows)
        found = sort_items(found)
        return found[:limit] if limit is not None else found

    # --------------------------------------------------------------------------- materialize

    def materialize(
        self, items: Iterable[pystac.Item], geobox: GeoBox, bands: Sequence[str]
    ) -> list[pystac.Item]:
        """Pixels for ``items`` on the tile ``geobox``: one item per acquisition, assets local files.

        ``bands`` are eqi aliases (``red``, ``nir``...; ones Sentinel-2 lacks, such as ``lwir``,
        are left out as :func:`eqi.io.load.group_items` does).  Each acquisition (items of one
        solar day and baseline) costs one Process API request the first time and nothing after
        (request cache).  The returned items go to :func:`eqi.io.load.group_items` unchanged.
        """
        items = list(items)
        if not items:
            return []
        aliases = ordered_bands(check_bands(list(bands)))
        if not aliases:
            raise BandError(f"none of the bands {list(bands)} is a Sentinel-2 L2A band")
        for item in items:
            identify_sensor(item)
            if "sentinelhub:collection" not in item.properties:
                raise SourceError(
                    f"item {item.id} was not found by this Sentinel Hub source; materialize only "
                    "items returned by its search()"
                )
        grid = request_grid(geobox, utm_resolution=self.utm_resolution)
        if max(grid.width, grid.height) > MAX_REQUEST_PX:
            raise ConfigError(
                f"a Sentinel Hub request for this tile would be {grid.width} x {grid.height} px "
                f"({'the tile grid' if grid.exact else f'UTM grid at {grid.transform.a:g} m'}); "
                f"the Process API allows at most {MAX_REQUEST_PX} x {MAX_REQUEST_PX}: use smaller "
                "tiles, or a coarser ?utm_resolution= for a non-EPSG run CRS"
            )
        url = f"{self.base_url}/api/v1/process"
        out = []
        for acquisition in acquisitions(items):
            collection = str(acquisition.lead.properties["sentinelhub:collection"])
            payload = process_payload(aliases, grid, acquisition.time_range, collection)
            key = cache_key(url, payload)
            folder = self.cache_dir / key[:2] / key
            files = cached_files(folder, aliases)
            if files is None:
                content = self._process(url, payload, grid, len(aliases) + 1, acquisition.lead.id)
                files = store_response(
                    content, folder, aliases=aliases, grid=grid, url=url, payload=payload
                )
            else:
                log.info("Sentinel Hub %s: cached answer %s (no request)", acquisition.lead.id, key[:12])
            out.append(
                band_item(
                    acquisition,
                    files,
                    crs_code=grid.crs_code,
                    shape=(grid.height, grid.width),
                    transform=tuple(grid.transform)[:6],
                    extra_properties={
                        "sentinelhub:request": key,
                        "sentinelhub:harmonize_values": False,
                        "sentinelhub:units": "DN",
                        "sentinelhub:grid": "tile" if grid.exact else "utm",
                    },
                )
            )
        return out

    def _process(self, url: str, payload: dict[str, Any], grid: Any, n_inputs: int, name: str) -> bytes:
        from sentinelhub import DownloadRequest, MimeType
        from sentinelhub.exceptions import SHRateLimitWarning

        client = self._download_client()
        request = DownloadRequest(
            request_type="POST",
            url=url,
            post_values=payload,
            headers={"content-type": MimeType.JSON.get_string(), "accept": MimeType.TIFF.get_string()},
            use_session=True,
            data_type=MimeType.TIFF,
        )
        estimate = estimate_processing_units(grid, n_inputs)
        log.info(
            "Sentinel Hub %s: process request %d x %d px, %d input bands (about %.2f processing units)",
            name, grid.width, grid.height, n_inputs, estimate,
        )  # fmt: skip
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", SHRateLimitWarning)
            try:
                (response,) = client.download([request], max_threads=1, decode_data=False)
            except (ConfigError, SourceError):
                raise
            except Exception as err:
                raise self._request_error(err, url, f"processing {name}") from None
        waits = sum(issubclass(w.category, SHRateLimitWarning) for w in caught)
        if waits:
            log.warning(
                "Sentinel Hub rate limit (HTTP 429) hit %d time(s) for %s; waited as asked", waits, name
            )
        headers = {str(k).lower(): v for k, v in (response.headers or {}).items()}
        spent = headers.get("x-processingunits-spent")
        if spent is not None:
            log.info("Sentinel Hub %s: %s processing units spent", name, spent)
        return bytes(response.content)


def datetime_now() -> datetime:
    """Now, UTC (the end of open search intervals)."""
    return datetime.now(UTC)

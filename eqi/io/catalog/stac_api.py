"""Search a remote STAC API (Earth Search, Planetary Computer, CDSE, rustac serve) with retries.

pystac-client does the paging; a ``urllib3`` :class:`~urllib3.util.Retry` mounted on its session
retries connection errors and HTTP 429/500/502/503/504 (GET and POST, so POST search pages are
retried too), honouring ``Retry-After`` up to ``max_retry_after`` seconds.  Planetary Computer
asset URLs are signed when read (:mod:`eqi.io.load`), not here.  Every failure becomes a
:class:`~eqi.errors.SourceError` naming the URL, the HTTP status and what to do.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pystac
from pystac_client import Client
from pystac_client.exceptions import APIError
from pystac_client.stac_api_io import StacApiIO
from urllib3.util import Retry

from eqi.errors import SourceError
from eqi.io.catalog.base import BBox, check_bbox, check_collections_arg, parse_interval, sort_items

__all__ = ["StacApiCatalog", "make_retry"]

RETRY_STATUS = (429, 500, 502, 503, 504)


class _CappedRetry(Retry):
    """Retry that never sleeps longer than ``max_retry_after`` seconds for a Retry-After header."""

    max_retry_after: float = 60.0

    def new(self, **kw: Any) -> _CappedRetry:
        new = super().new(**kw)
        new.max_retry_after = self.max_retry_after
        return new

    def get_retry_after(self, response: Any) -> float | None:
        value = super().get_retry_after(response)
        return None if value is None else min(value, self.max_retry_after)


def make_retry(
    retries: int = 5, backoff_factor: float = 0.5, max_retry_after: float = 60.0
) -> Retry:
    """The retry policy: ``retries`` attempts after the first, exponential backoff
    (``backoff_factor`` x 2^n seconds), on connection errors and HTTP 429/5xx, GET and POST."""
    retry = _CappedRetry(
        total=retries,
        connect=retries,
        read=retries,
        status=retries,
        backoff_factor=backoff_factor,
        backoff_max=max(backoff_factor, 30.0),
        status_forcelist=RETRY_STATUS,
        allowed_methods=frozenset({"GET", "POST", "HEAD"}),
        respect_retry_after_header=True,
        raise_on_status=False,  # the last answer comes back, so its status can be reported
    )
    retry.max_retry_after = max_retry_after
    return retry


class StacApiCatalog:
    """A STAC API searched through pystac-client (see :class:`eqi.io.catalog.base.Catalog`).

    Parameters
    ----------
    url : landing page of the API, e.g. ``https://earth-search.aws.element84.com/v1``.
    retries, backoff_factor, max_retry_after : retry policy (see :func:`make_retry`); seconds.
    timeout : seconds to connect and to read each answer, or a (connect, read) pair.
    page_size : items per search page asked of the server.
    headers : extra HTTP headers (e.g. an API key).
    modifier : called on every returned page of items (pystac-client ``modifier``).  Planetary
        Computer hrefs are not signed here: tokens expire, and saved items are reused by reruns,
        so :mod:`eqi.io.load` signs them when it reads them.
    """

    def __init__(
        self,
        url: str,
        *,
        retries: int = 5,
        backoff_factor: float = 0.5,
        max_retry_after: float = 60.0,
        timeout: float | tuple[float, float] = (10.0, 60.0),
        page_size: int = 100,
        headers: dict[str, str] | None = None,
        modifier: Callable[[Any], Any] | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.page_size = page_size
        self.retry = make_retry(retries, backoff_factor, max_retry_after)
        self.headers = dict(headers or {})
        self.modifier = modifier
        self._client: Client | None = None

    def __repr__(self) -> str:
        return f"StacApiCatalog({self.url!r})"

    def _fail(self, err: Exception, doing: str) -> SourceError:
        status = getattr(err, "status_code", None)
        detail = str(err).strip().replace("\n", " ")[:300]
        if status is not None:
            if status in RETRY_STATUS:
                when, hint = (
                    " (after retries)",
                    "The server is overloaded or rate-limiting; retry later",
                )
            else:
                when, hint = "", "Check the URL, collections and search parameters"
            return SourceError(
                f"STAC API {self.url} answered HTTP {status} while {doing}{when}: "
                f"{detail or 'no details'}. {hint}."
            )
        return SourceError(
            f"STAC API {self.url} could not be reached while {doing} ({type(err).__name__}: "
            f"{detail}). Check your network connection and the URL, or retry later."
        )

    @property
    def client(self) -> Client:
        """The pystac-client Client, opened on first use (reads the landing page)."""
        if self._client is None:
            stac_io = StacApiIO(headers=self.headers, timeout=self.timeout, max_retries=self.retry)
            try:
                # Client.open re-applies its own timeout to stac_io: pass ours again
                self._client = Client.open(
                    self.url, stac_io=stac_io, modifier=self.modifier, timeout=self.timeout
                )
            except Exception as err:  # requests/urllib3/APIError/JSON: all "cannot open"
                raise self._fail(err, "opening the landing page") from err
        return self._client

    def search(
        self,
        *,
        bbox: BBox,
        datetime: str,
        collections: list[str],
        limit: int | None = None,
    ) -> list[pystac.Item]:
        """Search the API; see :meth:`eqi.io.catalog.base.Catalog.search`.

        With ``limit`` the server's first ``limit`` matches are taken, then sorted.
        """
        box = check_bbox(bbox)
        parse_interval(datetime)  # validate before any request
        collections = check_collections_arg(collections)
        client = self.client
        try:
            search = client.search(
                collections=list(collections),
                bbox=list(box),
                datetime=datetime,
                max_items=limit,
                limit=min(self.page_size, limit) if limit else self.page_size,
            )
            items = list(search.items())
        except NotImplementedError as err:
            raise SourceError(
                f"{self.url} is not a STAC API with item search ({err}); give the API root URL"
            ) from err
        except (APIError, OSError, ValueError) as err:
            raise self._fail(err, "searching") from err
        return sort_items(items)

"""PDF from the report HTML with WeasyPrint (pango; CJK text in Noto Sans CJK, fonts-noto-cjk)."""

from __future__ import annotations

import logging
from pathlib import Path

from eqi.errors import InputError
from eqi.io.atomic import atomic_path

__all__ = ["write_pdf"]


def write_pdf(html: str, path: Path) -> Path:
    """Render ``html`` (self-contained: data: URIs only) to ``path``; nothing is fetched."""
    try:
        from weasyprint import HTML
    except OSError as exc:  # pango / cairo libraries missing
        raise InputError(f"WeasyPrint cannot load its system libraries ({exc}); install them with "
                         "`make system-deps` (Debian: libpango-1.0-0 libpangoft2-1.0-0) or use --format html") from None

    logging.getLogger("weasyprint").setLevel(logging.ERROR)
    logging.getLogger("fontTools").setLevel(logging.ERROR)
    with atomic_path(path) as tmp:
        from weasyprint.urls import URLFetcher

        # data: URIs only: any other scheme (http, file, ...) is refused
        HTML(string=html, url_fetcher=URLFetcher(allowed_protocols={"data"}, fail_on_errors=True)).write_pdf(tmp)
    return path

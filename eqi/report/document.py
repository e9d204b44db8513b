"""The document model of a report: title, banner flag, sections of blocks (the template renders it).

Blocks are dicts with a ``kind``: ``sentences`` (``lines``), ``note``/``text``/``heading``
(``text``), ``figure`` (``src`` data: URI, ``caption``), ``table`` (``header``, ``rows`` of cells).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Doc", "cell", "figure", "data_uri"]


@dataclass
class Doc:
    title: str
    subtitle: str
    simulated: bool
    sections: list[dict[str, Any]] = field(default_factory=list)
    links: list[dict[str, str]] = field(default_factory=list)

    def section(self, sid: str, title: str) -> list[dict[str, Any]]:
        blocks: list[dict[str, Any]] = []
        self.sections.append({"id": sid, "title": title, "blocks": blocks})
        return blocks


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def figure(blocks: list[dict[str, Any]], png: bytes, caption: str) -> None:
    blocks.append({"kind": "figure", "src": data_uri(png), "caption": caption})


def cell(text: Any, *, num: bool = False, href: str | None = None) -> dict[str, Any]:
    return {"text": "—" if text is None else str(text), "num": num, "href": href}



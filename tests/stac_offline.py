"""Offline STAC validation: pystac's bundled core schemas + the pinned extension schemas.

``validate_tree(path)`` validates a catalog, collection or item and everything its links reach
(pystac ``validate_all``), against ``tests/stac_schemas/<ext>/<version>/schema.json``; a schema not
pinned there is an error, never a download.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pystac
import pystac.validation
from pystac.validation.stac_validator import JsonSchemaSTACValidator

SCHEMAS = Path(__file__).parent / "stac_schemas"


class OfflineValidator(JsonSchemaSTACValidator):
    """pystac's JSON-schema validator with every extension schema from ``tests/stac_schemas``."""

    def __init__(self) -> None:
        super().__init__()
        for path in sorted(SCHEMAS.glob("*/*/schema.json")):
            ext, version = path.parent.parent.name, path.parent.name
            self.schema_cache[f"https://stac-extensions.github.io/{ext}/{version}/schema.json"] = json.loads(
                path.read_text(encoding="utf-8")
            )

    def _get_schema(self, schema_uri: str) -> dict[str, Any]:
        if schema_uri not in self.schema_cache:
            raise AssertionError(f"schema {schema_uri} is not pinned in tests/stac_schemas (no network in tests)")
        return self.schema_cache[schema_uri]


def validate_tree(path: Path) -> int:
    """Validate ``path`` and every catalog/collection/item its links reach; returns how many files."""
    validator = OfflineValidator()
    seen: set[Path] = set()

    def walk(p: Path) -> None:
        p = p.resolve()
        if p in seen:
            return
        seen.add(p)
        raw = json.loads(p.read_text(encoding="utf-8"))
        pystac.validation.validate_dict(raw, href=str(p), validator=validator)
        for link in raw.get("links", []):
            if link["rel"] in ("item", "child"):
                target = (p.parent / link["href"]).resolve()
                assert target.is_file(), f"{p}: link {link['href']} does not resolve"
                walk(target)

    walk(path)
    return len(seen)

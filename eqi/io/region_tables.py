"""Writers of the regional tables (docs/tables.md): GeoPackage, JSON, CSV and XLSX.

Byte-stable for equal inputs: rows and columns in the order given, floats printed with
``repr``-stable formatting, no timestamps (the GeoPackage's ``last_change`` is pinned with
GDAL's ``OGR_CURRENT_DATE``; the XLSX's document dates and zip entry times are fixed).
Every file is written atomically (eqi.io.atomic).
"""

from __future__ import annotations

import io
import json
import math
import re
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
import pyogrio

from eqi.io.atomic import atomic_path, atomic_write_bytes, atomic_write_text, scratch_dir

__all__ = ["LEVELS", "SHEETS", "write_region_tables", "header"]

LEVELS: tuple[str, ...] = ("province", "prefecture", "county", "zone")
SHEETS: tuple[str, ...] = ("ei", "eqi", "ecosystem_quality", "zonal", "changes", "transitions", "profiles")
_FIXED_DATE = "2000-01-01T00:00:00Z"


def _clean(value: Any) -> Any:
    """JSON/Excel-safe scalar: NaN → None, NumPy scalars → Python."""
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def header(column: str, labels: Mapping[str, Mapping[str, str]], lang: str) -> str:
    """The localised header of a column (its name when no label is known)."""
    return str(labels.get(column, {}).get(lang) or column)


def _frame(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> pd.DataFrame:
    return pd.DataFrame([{c: _clean(r.get(c)) for c in columns} for r in rows], columns=list(columns))


def _csv_text(frame: pd.DataFrame) -> str:
    buf = io.StringIO()
    frame.to_csv(buf, index=False, lineterminator="\n", float_format="%.10g")
    return buf.getvalue()


def _stable_xlsx(data: bytes) -> bytes:
    """Re-zip an openpyxl workbook with fixed entry times and fixed document dates."""
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            content = src.read(info.filename)
            if info.filename == "docProps/core.xml":
                text = content.decode("utf-8")
                text = re.sub(r"(<dcterms:(created|modified)[^>]*>)[^<]*(</dcterms:\2>)", rf"\g<1>{_FIXED_DATE}\g<3>", text)
                content = text.encode("utf-8")
            zi = zipfile.ZipInfo(info.filename, date_time=(1980, 1, 1, 0, 0, 0))
            zi.compress_type = zipfile.ZIP_DEFLATED
            zi.external_attr = 0o600 << 16
            dst.writestr(zi, content)
    return out.getvalue()


def _xlsx(sheets: Mapping[str, pd.DataFrame]) -> bytes:
    import datetime

    from openpyxl import Workbook

    wb = Workbook()
    wb.remove(wb.active)
    for name, frame in sheets.items():
        ws = wb.create_sheet(name)
        ws.append(list(frame.columns))
        for rec in frame.itertuples(index=False):
            ws.append([_clean(v) for v in rec])
        ws.freeze_panes = "A2"
    fixed = datetime.datetime(2000, 1, 1)
    wb.properties.created = fixed
    wb.properties.modified = fixed
    wb.properties.creator = "eqi"
    buf = io.BytesIO()
    wb.save(buf)
    return _stable_xlsx(buf.getvalue())


def _gpkg(path: Path, layers: Mapping[str, gpd.GeoDataFrame]) -> None:
    with scratch_dir(path) as tmp:
        target = tmp / path.name
        with pyogrio_date():
            for name, frame in layers.items():
                pyogrio.write_dataframe(frame, target, layer=name, driver="GPKG", append=target.exists())
        with atomic_path(path) as final:
            target.replace(final)


class pyogrio_date:  # noqa: N801 - a context manager used like a function
    """Pin the GeoPackage ``last_change`` timestamps (GDAL ``OGR_CURRENT_DATE``)."""

    def __enter__(self) -> None:
        self._old = pyogrio.get_gdal_config_option("OGR_CURRENT_DATE")
        pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": "2000-01-01T00:00:00.000Z"})

    def __exit__(self, *exc: Any) -> None:
        pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": self._old})


def write_region_tables(
    folder: str | Path,
    *,
    rows: Sequence[Mapping[str, Any]],
    geometries: Mapping[str, Any],
    families: Mapping[str, Sequence[str]],
    changes: Sequence[Mapping[str, Any]],
    change_columns: Sequence[str],
    transitions: Sequence[Mapping[str, Any]],
    transition_columns: Sequence[str],
    labels: Mapping[str, Mapping[str, str]],
    meta: Mapping[str, Any],
) -> list[Path]:
    """Write ``regions.gpkg``, ``regions.json``, ``regions-{en,zh}.csv`` and ``.xlsx`` in ``folder``.

    ``rows``: one mapping per region x year (key columns + every indicator); ``geometries``:
    region slug → shapely geometry (EPSG:4326); ``families``: sheet → its columns (``ei``,
    ``eqi``, ``zonal``; ``main`` = the CSV/GeoPackage columns); ``labels``: column →
    ``{"en": …, "zh": …}`` headers with units; ``meta``: the top of ``regions.json``.
    """
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    main_cols = list(families["main"])
    main = _frame(rows, main_cols)
    written: list[Path] = []

    layers: dict[str, gpd.GeoDataFrame] = {}
    for level in LEVELS:
        part = main[main["level"] == level].reset_index(drop=True)
        if part.empty:
            continue
        for col in part.columns:  # booleans with gaps (no interval) stay booleans, NULL where missing
            values = part[col].dropna()
            if part[col].dtype == object and len(values) and all(isinstance(v, bool) for v in values):
                part[col] = part[col].astype("boolean")
        geoms = [geometries[r] for r in part["region"]]
        layers[level] = gpd.GeoDataFrame(part, geometry=geoms, crs="EPSG:4326")
    if layers:
        _gpkg(out / "regions.gpkg", layers)
        written.append(out / "regions.gpkg")

    doc = dict(meta)
    doc["columns"] = {c: dict(labels.get(c, {})) for c in dict.fromkeys([*main_cols, *change_columns, *transition_columns])}
    doc["rows"] = [{c: _clean(r.get(c)) for c in main_cols} for r in rows]
    doc["changes"] = [{c: _clean(r.get(c)) for c in change_columns} for r in changes]
    doc["transitions"] = [{c: _clean(r.get(c)) for c in transition_columns} for r in transitions]
    atomic_write_text(out / "regions.json", json.dumps(doc, ensure_ascii=False, indent=1, allow_nan=False) + "\n")
    written.append(out / "regions.json")

    profile_rows = [
        {"profile": k, "id": v.get("id"), "version": v.get("version"), "sha256": v.get("sha256"),
         "tags": ";".join(f"{a}={b}" for a, b in (v.get("tags") or {}).items())}
        for k, v in (meta.get("profiles") or {}).items()
    ]  # fmt: skip
    profile_frame = pd.DataFrame(profile_rows, columns=["profile", "id", "version", "sha256", "tags"])
    for lang in ("en", "zh"):
        def loc(frame: pd.DataFrame, lang: str = lang) -> pd.DataFrame:
            return frame.rename(columns={c: header(c, labels, lang) for c in frame.columns})

        text = _csv_text(loc(main))
        atomic_write_bytes(out / f"regions-{lang}.csv", (("\ufeff" if lang == "zh" else "") + text).encode("utf-8"))
        sheets = {name: loc(_frame(rows, families[name])) for name in ("ei", "eqi", "ecosystem_quality", "zonal") if name in families}
        sheets["changes"] = loc(_frame(changes, change_columns))
        sheets["transitions"] = loc(_frame(transitions, transition_columns))
        sheets["profiles"] = profile_frame
        atomic_write_bytes(out / f"regions-{lang}.xlsx", _xlsx(sheets))
        written += [out / f"regions-{lang}.csv", out / f"regions-{lang}.xlsx"]
    return written

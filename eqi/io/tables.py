"""Tabular inputs of EI / EQI (CSV or XLSX): schema, reading and validation.

Families (one file each, or one XLSX workbook with a sheet per family; schema in
``docs/tabular-inputs.md`` and :data:`SCHEMAS`): ``biodiversity``, ``pollution``,
``water_resources``, ``erosion``, ``restriction``, ``disasters``, ``functions``.  Every row is one
region (6-digit ``adcode``) and ``year``.  Headers may be the English column name or the
Chinese label, optionally followed by the unit in parentheses (``化学需氧量 (t)``, ``cod_t``);
a unit that differs from the schema's is refused rather than converted.

Validation raises :class:`eqi.errors.InputError` naming the file, the row (as numbered in the
file: line of the CSV, row of the sheet) and the column, for: a missing required column, an
empty required value, an unknown or malformed adcode, a non-numeric, negative or non-finite
value, a year that is not an integer, a restriction level out of range, a duplicated
(adcode, year).  Up to 20 problems of a file are listed in one message.
"""

from __future__ import annotations

import csv
import math
import re
import unicodedata
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from eqi.errors import InputError
from eqi.science.ei import POLLUTANTS

__all__ = [
    "Column",
    "TableSchema",
    "SCHEMAS",
    "read_table",
    "read_workbook",
    "find_tables",
    "read_tables",
    "row_for",
    "history",
    "restriction_level",
    "ei_table_values",
    "eqi_table_rows",
]

ColumnKind = Literal["adcode", "year", "number", "integer", "level", "text"]
MAX_ERRORS = 20
MAX_RESTRICTION_LEVEL = 3


@dataclass(frozen=True)
class Column:
    """One column of a family: canonical name, Chinese label, unit, kind, required or not."""

    name: str
    label_zh: str
    unit: str = ""
    kind: ColumnKind = "number"
    required: bool = True
    aliases: tuple[str, ...] = ()
    units: tuple[str, ...] = ()  # accepted spellings of ``unit`` in headers

    def names(self) -> set[str]:
        return {_norm(n) for n in (self.name, self.label_zh, *self.aliases)}


@dataclass(frozen=True)
class TableSchema:
    """A family: its columns and whether (adcode, year) must be unique."""

    family: str
    title_zh: str
    columns: tuple[Column, ...]
    unique: bool = True
    description: str = ""
    sheet_names: tuple[str, ...] = field(default=())


_ADCODE = Column("adcode", "行政区划代码", kind="adcode", aliases=("区划代码", "code", "县代码"))
_YEAR = Column("year", "年份", kind="year", aliases=("年",))
_T = ("t", "吨", "tonnes", "tons")
_KM2 = ("km2", "km²", "平方公里", "sqkm")
_MM = ("mm", "毫米")

SCHEMAS: dict[str, TableSchema] = {
    s.family: s
    for s in (
        TableSchema(
            "biodiversity", "生物多样性调查",
            (_ADCODE, _YEAR,
             Column("biodiversity_index", "生物多样性指数", "0-100", aliases=("bi",), units=("0-100",)),
             Column("invasive_species", "外来入侵物种数", "species", kind="integer", required=False,
                    aliases=("外来入侵物种",), units=("种", "species"))),
            description="HJ 623-2011 biodiversity index BI (EI's BRI, EQI bd_species); recorded invasive alien species (EQI bd_invasive).",
        ),
        TableSchema(
            "pollution", "污染物排放",
            (_ADCODE, _YEAR,
             Column("cod_t", "化学需氧量", "t", aliases=("cod",), units=_T),
             Column("nh3n_t", "氨氮", "t", aliases=("nh3n", "nh3-n"), units=_T),
             Column("so2_t", "二氧化硫", "t", aliases=("so2",), units=_T),
             Column("dust_t", "烟粉尘", "t", aliases=("dust", "烟(粉)尘"), units=_T),
             Column("nox_t", "氮氧化物", "t", aliases=("nox",), units=_T),
             Column("solid_waste_t", "固体废物丢弃量", "t", aliases=("solid_waste",), units=_T),
             Column("precipitation_mm", "年降水量", "mm", aliases=("precipitation", "降水量"), units=_MM)),
            description="Annual loads and precipitation for EI's pollution load index PLI (HJ 192-2015 §2.6).",
        ),
        TableSchema(
            "water_resources", "水资源",
            (_ADCODE, _YEAR,
             Column("water_resources_1e6m3", "水资源量", "1e6 m3", aliases=("water_resources",),
                    units=("1e6m3", "10^6m3", "10⁶m³", "10⁶m3", "百万立方米", "106m3")),
             Column("river_length_km", "河流长度", "km", required=False, aliases=("river_length",), units=("km", "公里", "千米"))),
            description="Water resources amount (water-resources bulletin) for EI's WNDI; past years drive the wet-year cap. River length only when no river layer is used.",
        ),
        TableSchema(
            "erosion", "土壤侵蚀与土地胁迫",
            (_ADCODE, _YEAR,
             Column("severe_erosion_km2", "重度侵蚀面积", "km2", aliases=("severe_erosion",), units=_KM2),
             Column("moderate_erosion_km2", "中度侵蚀面积", "km2", aliases=("moderate_erosion",), units=_KM2),
             Column("other_stress_km2", "其他土地胁迫面积", "km2", aliases=("other_stress",), units=_KM2)),
            description="Erosion survey areas (SL 190-2007 classes) and other land stress (e.g. rock desertification) for EI's LSI.",
        ),
        TableSchema(
            "restriction", "环境限制",
            (_ADCODE, _YEAR,
             Column("level", "限制等级", kind="level", aliases=("restriction_level", "环境限制等级")),
             Column("event", "事件", kind="text", required=False, aliases=("事件类型", "event_type")),
             Column("note", "备注", kind="text", required=False)),
            unique=False,
            description="Environmental restriction level per region and year (0-3; several events: the highest level applies). The mapping of event types to levels is [U] and is the station's decision.",
        ),
        TableSchema(
            "disasters", "自然灾害",
            (_ADCODE, _YEAR,
             Column("affected_km2", "受灾面积", "km2", aliases=("affected_area",), units=_KM2)),
            description="Area affected by landslides, debris flows, fire, drought (EQI es_natural).",
        ),
        TableSchema(
            "functions", "生态功能",
            (_ADCODE, _YEAR,
             Column("function_index", "生态功能指数", "0-100", units=("0-100",))),
            description="County ecological function index by function type (EQI ef_function; disabled in the default profile).",
        ),
    )
}  # fmt: skip


def _norm(text: Any) -> str:
    s = unicodedata.normalize("NFKC", str(text)).strip().lower()
    return re.sub(r"\s+", "", s)


_HEADER = re.compile(r"^(?P<name>.*?)[\(\[](?P<unit>[^\)\]]*)[\)\]]$")


class _Problems:
    def __init__(self, path: Path, sheet: str | None) -> None:
        self.where = f"{path}" + (f" (sheet '{sheet}')" if sheet else "")
        self.items: list[str] = []

    def add(self, text: str) -> None:
        self.items.append(text)

    def raise_if_any(self) -> None:
        if not self.items:
            return
        shown = self.items[:MAX_ERRORS]
        more = len(self.items) - len(shown)
        lines = "\n  ".join(shown)
        tail = f"\n  ... and {more} more" if more else ""
        raise InputError(f"{self.where}: {len(self.items)} problem(s):\n  {lines}{tail}")


def _match_header(header: Any, schema: TableSchema) -> tuple[Column | None, str | None]:
    """The column a header names and the unit it states (None when none is given)."""
    text = _norm(header)
    unit = None
    m = _HEADER.match(text)
    if m:
        text, unit = m.group("name"), m.group("unit")
    for col in schema.columns:
        if text in col.names():
            return col, unit
    return None, unit


def _rows_csv(path: Path) -> tuple[list[tuple[int, list[Any]]], str]:
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            with path.open(newline="", encoding=encoding) as fh:
                reader = csv.reader(fh)
                rows = []
                for rec in reader:
                    rows.append((reader.line_num, rec))
            return rows, encoding
        except UnicodeDecodeError:
            continue
    raise InputError(f"{path}: not readable as UTF-8 or GB18030 text; save the CSV as UTF-8")


def _rows_sheet(ws: Any) -> list[tuple[int, list[Any]]]:
    return [(i, list(values)) for i, values in enumerate(ws.iter_rows(values_only=True), start=1)]


def _blank(v: Any) -> bool:
    return v is None or (isinstance(v, str) and v.strip() == "") or (isinstance(v, float) and math.isnan(v))


_THOUSANDS = re.compile(r"^[+-]?\d{1,3}(,\d{3})+(\.\d+)?$")


def _number(v: Any) -> float:
    if isinstance(v, bool):
        raise ValueError
    if isinstance(v, int | float):
        return float(v)
    s = unicodedata.normalize("NFKC", str(v)).strip()
    if _THOUSANDS.match(s):
        s = s.replace(",", "")
    return float(s)


def _parse(
    rows: list[tuple[int, list[Any]]],
    schema: TableSchema,
    problems: _Problems,
    known_adcodes: Collection[str] | None,
) -> pd.DataFrame:
    rows = [(n, r) for n, r in rows if not all(_blank(v) for v in r)]
    if not rows:
        problems.add("the table is empty (no header row)")
        problems.raise_if_any()
    header_no, header = rows[0]
    index: dict[str, int] = {}
    for i, h in enumerate(header):
        if _blank(h):
            continue
        col, unit = _match_header(h, schema)
        if col is None:
            continue  # extra columns are ignored (e.g. county names)
        if col.name in index:
            problems.add(f"row {header_no}: column '{col.name}' appears twice (headers '{header[index[col.name]]}' and '{h}')")
        if unit is not None and col.units and _norm(unit).replace(" ", "") not in {_norm(u) for u in col.units}:
            problems.add(
                f"row {header_no}, column '{h}': unit '{unit}' differs from the schema's '{col.unit}' "
                f"(convert the values to {col.unit})"
            )
        index[col.name] = i
    for col in schema.columns:
        if col.required and col.name not in index:
            found = ", ".join(f"'{h}'" for h in header if not _blank(h))
            problems.add(
                f"missing column '{col.name}' ({col.label_zh}{', ' + col.unit if col.unit else ''}); "
                f"columns found: {found}"
            )
    problems.raise_if_any()

    records: list[dict[str, Any]] = []
    seen: dict[tuple[str, int], int] = {}
    for line, rec in rows[1:]:
        out: dict[str, Any] = {"_row": line}
        for col in schema.columns:
            if col.name not in index:
                out[col.name] = None
                continue
            i = index[col.name]
            raw = rec[i] if i < len(rec) else None
            where = f"row {line}, column '{header[i]}'"
            if _blank(raw):
                if col.required:
                    problems.add(f"{where}: empty value ({col.label_zh} is required)")
                out[col.name] = None
                continue
            out[col.name] = _value(raw, col, where, problems, known_adcodes)
        if schema.unique and isinstance(out.get("adcode"), str) and isinstance(out.get("year"), int):
            key = (out["adcode"], out["year"])
            if key in seen:
                problems.add(f"row {line}: adcode {key[0]} year {key[1]} already given in row {seen[key]}")
            else:
                seen[key] = line
        records.append(out)
    problems.raise_if_any()
    frame = pd.DataFrame.from_records(records, columns=["_row", *(c.name for c in schema.columns)])
    return frame


def _value(raw: Any, col: Column, where: str, problems: _Problems, known: Collection[str] | None) -> Any:
    if col.kind == "text":
        return str(raw).strip()
    if col.kind == "adcode":
        text = str(int(raw)) if isinstance(raw, float) and raw.is_integer() else str(raw).strip()
        if not re.fullmatch(r"\d{6}", text):
            problems.add(f"{where}: adcode '{raw}' is not a 6-digit administrative code")
            return None
        if known is not None and text not in known:
            problems.add(f"{where}: unknown adcode '{text}' (not a region of the evaluation area; see `eqi aoi list`)")
            return None
        return text
    try:
        x = _number(raw)
    except (TypeError, ValueError):
        problems.add(f"{where}: '{raw}' is not a number")
        return None
    if not math.isfinite(x):
        problems.add(f"{where}: '{raw}' is not a finite number")
        return None
    if col.kind == "year":
        if not x.is_integer() or not 1900 <= x <= 2100:
            problems.add(f"{where}: year '{raw}' is not a year between 1900 and 2100")
            return None
        return int(x)
    if x < 0:
        problems.add(f"{where}: negative value {raw} ({col.label_zh} cannot be negative)")
        return None
    if col.kind == "level":
        if not x.is_integer() or x > MAX_RESTRICTION_LEVEL:
            problems.add(f"{where}: restriction level '{raw}' must be an integer 0..{MAX_RESTRICTION_LEVEL}")
            return None
        return int(x)
    if col.kind == "integer" and not x.is_integer():
        problems.add(f"{where}: '{raw}' is not a whole number")
        return None
    return x


def _schema(family: str) -> TableSchema:
    if family not in SCHEMAS:
        raise InputError(f"unknown table family '{family}'; families: {', '.join(SCHEMAS)}")
    return SCHEMAS[family]


def read_table(
    path: str | Path,
    family: str,
    *,
    known_adcodes: Collection[str] | None = None,
    sheet: str | None = None,
) -> pd.DataFrame:
    """Read and validate one table of ``family`` (CSV, or XLSX: ``sheet`` or the family's sheet
    or the only sheet).  Returns canonical columns plus ``_row`` (row number in the file);
    ``frame.attrs["source"]`` is the path."""
    p = Path(path)
    schema = _schema(family)
    if not p.is_file():
        raise InputError(f"{p}: table file not found ({family})")
    suffix = p.suffix.lower()
    if suffix == ".csv":
        rows, _enc = _rows_csv(p)
        problems = _Problems(p, None)
    elif suffix in (".xlsx", ".xlsm"):
        wb = _open_workbook(p)
        names = wb.sheetnames
        pick = sheet or next((n for n in names if _norm(n) in {_norm(family), _norm(schema.title_zh)}), None)
        if pick is None and len(names) == 1:
            pick = names[0]
        if pick is None or pick not in names:
            raise InputError(f"{p}: no sheet '{sheet or family}' (sheets: {', '.join(names)})")
        rows = _rows_sheet(wb[pick])
        problems = _Problems(p, pick)
    else:
        raise InputError(f"{p}: tables must be .csv or .xlsx, not '{p.suffix}'")
    frame = _parse(rows, schema, problems, known_adcodes)
    frame.attrs["source"] = str(p)
    frame.attrs["family"] = family
    return frame


def _open_workbook(p: Path) -> Any:
    import openpyxl

    try:
        return openpyxl.load_workbook(p, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises several types for a damaged file
        raise InputError(f"{p}: cannot read the workbook ({exc})") from None


def read_workbook(path: str | Path, *, known_adcodes: Collection[str] | None = None) -> dict[str, pd.DataFrame]:
    """Every sheet of a workbook named after a family (English name or Chinese title)."""
    p = Path(path)
    wb = _open_workbook(p)
    out = {}
    for family, schema in SCHEMAS.items():
        for name in wb.sheetnames:
            if _norm(name) in {_norm(family), _norm(schema.title_zh)}:
                out[family] = read_table(p, family, known_adcodes=known_adcodes, sheet=name)
    return out


def find_tables(folder: str | Path) -> dict[str, Path]:
    """Files of a folder named after a family (``pollution.csv``, ``水资源.xlsx`` …)."""
    d = Path(folder)
    if not d.is_dir():
        raise InputError(f"{d}: tables folder not found")
    out: dict[str, Path] = {}
    for family, schema in SCHEMAS.items():
        for suffix in (".csv", ".xlsx"):
            for stem in (family, schema.title_zh):
                candidate = d / f"{stem}{suffix}"
                if candidate.is_file():
                    if family in out:
                        raise InputError(f"{d}: two files for '{family}': {out[family].name} and {candidate.name}")
                    out[family] = candidate
    return out


def read_tables(
    source: str | Path | Mapping[str, str | Path],
    *,
    known_adcodes: Collection[str] | None = None,
) -> dict[str, pd.DataFrame]:
    """All tables of a folder (:func:`find_tables`), a workbook, or ``{family: path}``; validated."""
    if isinstance(source, Mapping):
        return {f: read_table(p, f, known_adcodes=known_adcodes) for f, p in source.items()}
    p = Path(source)
    if p.is_file() and p.suffix.lower() in (".xlsx", ".xlsm"):
        return read_workbook(p, known_adcodes=known_adcodes)
    return {f: read_table(path, f, known_adcodes=known_adcodes) for f, path in find_tables(p).items()}


# ------------------------------------------------------------------------------------ lookups


def row_for(frame: pd.DataFrame | None, adcode: str, year: int) -> dict[str, Any] | None:
    """The region-year's row as ``{column: value}`` (None without a table or a row)."""
    if frame is None:
        return None
    hit = frame[(frame["adcode"] == str(adcode)) & (frame["year"] == int(year))]
    if hit.empty:
        return None
    rec = hit.iloc[0].to_dict()
    rec.pop("_row", None)
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in rec.items()}


def history(frame: pd.DataFrame | None, adcode: str, year: int, column: str, years: int | None = None) -> list[float]:
    """Values of ``column`` for the region's years before ``year`` (most recent ``years`` if given)."""
    if frame is None:
        return []
    sel = frame[(frame["adcode"] == str(adcode)) & (frame["year"] < int(year))].sort_values("year")
    vals = [float(v) for v in sel[column] if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return vals[-years:] if years else vals


def restriction_level(frame: pd.DataFrame | None, adcode: str, year: int) -> int | None:
    """Highest restriction level recorded for the region-year (None: no table or no row)."""
    if frame is None:
        return None
    hit = frame[(frame["adcode"] == str(adcode)) & (frame["year"] == int(year))]
    return None if hit.empty else int(max(hit["level"]))


def ei_table_values(
    tables: Mapping[str, pd.DataFrame], adcode: str, year: int, *, history_years: int | None = None
) -> dict[str, Any]:
    """Keyword arguments of :class:`eqi.science.ei.EiInputs` that come from tables (None where a
    table or row is missing, so EI names what is missing)."""
    bio = row_for(tables.get("biodiversity"), adcode, year) or {}
    pol = row_for(tables.get("pollution"), adcode, year)
    wat = row_for(tables.get("water_resources"), adcode, year) or {}
    ero = row_for(tables.get("erosion"), adcode, year) or {}
    out: dict[str, Any] = {
        "biodiversity_index": bio.get("biodiversity_index"),
        "water_resources": wat.get("water_resources_1e6m3"),
        "water_resources_history": tuple(
            history(tables.get("water_resources"), adcode, year, "water_resources_1e6m3", history_years)
        ),
        "severe_erosion_km2": ero.get("severe_erosion_km2"),
        "moderate_erosion_km2": ero.get("moderate_erosion_km2"),
        "other_stress_km2": ero.get("other_stress_km2"),
        "pollution_t": None if pol is None else {k: pol.get(f"{k}_t") for k in POLLUTANTS},
        "precipitation_mm": None if pol is None else pol.get("precipitation_mm"),
        "restriction_level": restriction_level(tables.get("restriction"), adcode, year),
    }
    if wat.get("river_length_km") is not None:
        out["river_length_km"] = wat["river_length_km"]
    return out


def eqi_table_rows(tables: Mapping[str, pd.DataFrame], adcode: str, year: int, families: Iterable[str] | None = None) -> dict[str, dict[str, Any] | None]:
    """``{family: row or None}`` for :func:`eqi.science.eqi_index.gather_values`."""
    return {f: row_for(tables.get(f), adcode, year) for f in (families or SCHEMAS)}

"""docs/tabular-inputs.md documents every family and column of eqi.io.tables.SCHEMAS."""

from __future__ import annotations

from pathlib import Path

from eqi.io.tables import SCHEMAS

DOC = Path(__file__).resolve().parents[2] / "docs" / "tabular-inputs.md"


def test_every_family_and_column_is_documented():
    text = DOC.read_text(encoding="utf-8")
    for family, schema in SCHEMAS.items():
        section = text.split(f"### `{family}` — {schema.title_zh}", 1)
        assert len(section) == 2, f"no section for {family}"
        body = section[1].split("\n### ", 1)[0]
        for col in schema.columns:
            line = next((ln for ln in body.splitlines() if ln.startswith(f"| `{col.name}` |")), None)
            assert line is not None, f"{family}.{col.name} not documented"
            assert col.label_zh in line
            assert ("| yes |" in line) == col.required, f"{family}.{col.name}: required flag"

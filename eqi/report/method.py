"""The method section: every tagged parameter of the run's method profiles, and the fitted models.

The run's ``metadata.json`` names each profile (id, version, sha256); the tagged values are read
from ``configs/methods/<id>.yaml`` and the report says whether that file is still the one the run
used (same sha256) or has changed since.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from typing import Any

from eqi.report.indicators import Indicators
from eqi.report.messages import Messages
from eqi.report.outputs import YearOutputs

__all__ = ["tagged_parameters", "method_blocks"]


def tagged_parameters(data: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any, str, str]]:
    """(dotted path, value, tag, source) of every entry of a profile that carries a ``tag``."""
    for key, value in data.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            if "tag" in value:
                shown = value.get("value", value.get("method", {k: v for k, v in value.items() if k not in ("tag", "source")}))
                yield path, shown, str(value["tag"]), str(value.get("source", ""))
            yield from tagged_parameters({k: v for k, v in value.items() if isinstance(v, Mapping)}, path)


def _profile_file(profile_id: str) -> tuple[Mapping[str, Any], str] | None:
    from eqi.errors import EqiError
    from eqi.resources import config_dir, load_yaml

    try:
        path = config_dir() / "methods" / f"{profile_id}.yaml"
        if not path.is_file():
            return None
        return load_yaml(path), hashlib.sha256(path.read_bytes()).hexdigest()
    except (EqiError, OSError):
        return None


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _fitted(m: Messages, method: Mapping[str, Any]) -> list[str]:
    lines = []
    rsei = method.get("rsei") or {}
    if rsei.get("loadings"):
        loadings = ", ".join(f"{k} {v:+.3f}" for k, v in rsei["loadings"].items())
        lines.append(m.t("m_loadings", share=f"{float(rsei.get('pc1_share', 0)) * 100:.1f}%") + ": " + loadings)
    fvc = method.get("fvc") or {}
    if "ndvi_soil" in fvc:
        lines.append(m.t("m_fvc", soil=f"{fvc['ndvi_soil']:.3f}", veg=f"{fvc['ndvi_veg']:.3f}"))
    return lines


def _accuracy(out: YearOutputs) -> tuple[float, float] | None:
    import json

    path = out.folder / "landcover_accuracy.json"
    if not path.is_file():
        return None
    overall = json.loads(path.read_text(encoding="utf-8")).get("map_accuracy", {}).get("overall_accuracy", {})
    return (overall["value"], overall.get("half_width", 0.0)) if "value" in overall else None


def method_blocks(m: Messages, out: YearOutputs, ind: Indicators) -> list[dict[str, Any]]:
    """Blocks of the method section for one region and year."""
    method = out.metadata.get("method", {})
    blocks: list[dict[str, Any]] = [{"kind": "note", "text": m.t("m_tags_legend")}]
    fitted = _fitted(m, method)
    acc = _accuracy(out)
    if acc:
        fitted.append(m.t("m_lc_accuracy", oa=f"{acc[0]:.3f}", hw=f"{acc[1]:.3f}"))
    if fitted:
        blocks += [{"kind": "heading", "text": m.t("m_fitted")}, {"kind": "sentences", "lines": fitted}]
    profiles = dict(method.get("profiles") or {})
    for key, extra in (ind.profiles or {}).items():  # EI / EQI profiles of the region table
        if isinstance(extra, Mapping) and extra.get("id"):
            profiles.setdefault(str(extra["id"]), {"id": extra["id"], "version": extra.get("version"), "sha256": extra.get("sha256")})
        del key
    for name, info in sorted(profiles.items()):
        profile_id = str(info.get("id") or name)
        found = _profile_file(profile_id)
        if found is None:
            status = m.t("m_missing")
        elif info.get("sha256") and found[1] != info["sha256"]:
            status = m.t("m_changed", sha=str(info["sha256"])[:12])
        else:
            status = m.t("m_same")
        blocks.append({"kind": "heading", "text": f"{m.t('m_profile')} {profile_id} · {m.t('m_version')} {info.get('version', '—')} · {status}"})
        if found is None:
            continue
        rows = [[{"text": p, "num": False, "href": None}, {"text": _short(v), "num": False, "href": None},
                 {"text": t, "num": False, "href": None}, {"text": s, "num": False, "href": None}]
                for p, v, t, s in tagged_parameters(found[0])]
        if rows:
            blocks.append({"kind": "table", "header": [m.t("m_param"), m.t("value"), m.t("m_tag"), m.t("m_source")], "rows": rows})
    return blocks

"""Locate the data files that ship with eqi: method profiles (configs/) and boundaries (aoi/).

In a source checkout they are the top-level ``configs/`` and ``aoi/`` folders; in an installed
wheel they are packaged under ``eqi/_data/``.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml

from eqi.errors import ConfigError

__all__ = ["config_dir", "aoi_dir", "load_yaml", "load_method_params", "param_value", "method_profiles"]

_PACKAGE_DIR = Path(__file__).resolve().parent


def _find(name: str) -> Path:
    for candidate in (_PACKAGE_DIR / "_data" / name, _PACKAGE_DIR.parent / name):
        if candidate.is_dir():
            return candidate
    raise ConfigError(f"eqi data folder '{name}/' not found next to the package; reinstall eqi")


def config_dir() -> Path:
    """Folder holding run configs and ``methods/`` parameter profiles."""
    return _find("configs")


def aoi_dir() -> Path:
    """Folder holding the boundary library (GeoPackages with provenance)."""
    return _find("aoi")


@cache
def load_yaml(path: Path) -> dict[str, Any]:
    """A YAML mapping shipped with eqi (cached: treat as read-only); ConfigError if absent/invalid."""
    if not path.is_file():
        raise ConfigError(f"eqi configuration file not found: {path}")
    with path.open(encoding="utf-8") as fh:
        data = yaml.safe_load(fh)
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a YAML mapping")
    return data


def param_value(entry: Any) -> Any:
    """A profile parameter's value: ``{value: x, tag: ..., source: ...}`` -> ``x``; plain -> itself."""
    return entry["value"] if isinstance(entry, dict) and "value" in entry else entry


def load_method_params(name: str) -> dict[str, Any]:
    """Return the parameter profile ``configs/methods/<name>.yaml`` as a dict.

    Each profile carries ``id``, ``version`` and, per parameter, the verification tag from the
    methods spec.  The returned dict is cached: treat it as read-only (copy before changing).
    """
    path = config_dir() / "methods" / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"method profile '{name}' not found at {path}")
    return load_yaml(path)


def method_profiles(names: tuple[str, ...] = ("indices", "fvc", "rsei", "landcover")) -> dict[str, Any]:
    """Id, version and sha256 of each method profile, for the provenance of outputs."""
    import hashlib

    out: dict[str, Any] = {}
    for name in names:
        path = config_dir() / "methods" / f"{name}.yaml"
        if path.is_file():
            params = load_method_params(name)
            out[name] = {
                "id": params.get("id", name),
                "version": str(params.get("version", "")),
                "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            }
    return out

"""Typed, read-only method profiles: the parameters that change results, with their provenance.

A profile (``configs/methods/<name>.yaml``) holds an ``id``, a ``version`` and parameters written
either plainly or as ``{value: ..., tag: "[U]", source: "..."}`` (the verification tag of the
methods spec).  :class:`Profile` is an immutable mapping over that content (nested mappings are
read-only, lists become tuples), so a profile loaded once can be passed to every science function
and shared between threads and Dask workers without anyone changing it by accident.

Science functions receive the profile they need as an argument; they never read files.  Loading
from disk lives in :mod:`eqi.resources`; run-config overrides make a new profile with
:meth:`Profile.with_overrides`, which records the override as the parameter's source.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

__all__ = ["Param", "Profile", "param_value", "freeze", "thaw"]


@dataclass(frozen=True)
class Param:
    """One method parameter: its value, the spec's verification tag and where it comes from."""

    value: Any
    tag: str = ""
    source: str = ""


def freeze(value: Any) -> Any:
    """Deep read-only copy: mappings -> ``MappingProxyType``, lists -> tuples."""
    if isinstance(value, Mapping):
        return MappingProxyType({str(k) if not isinstance(k, int) else k: freeze(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(freeze(v) for v in value)
    return value


def thaw(value: Any) -> Any:
    """Plain JSON-friendly copy of a frozen value (dicts and lists)."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [thaw(v) for v in value]
    return value


def param_value(entry: Any) -> Any:
    """A parameter's value: ``{value: x, tag: ..., source: ...}`` -> ``x``; a plain value -> itself."""
    if isinstance(entry, Param):
        return entry.value
    return entry["value"] if isinstance(entry, Mapping) and "value" in entry else entry


class Profile(Mapping[str, Any]):
    """An immutable method profile (mapping interface over the YAML content).

    Parameters
    ----------
    name
        Profile name (file stem, e.g. ``"rsei"``).
    data
        The parsed YAML mapping.
    sha256
        Hex digest of the file it came from ("" for profiles built in code), for provenance.
    """

    __slots__ = ("name", "sha256", "_data")

    def __init__(self, name: str, data: Mapping[str, Any], sha256: str = "") -> None:
        self.name = name
        self.sha256 = sha256
        self._data = freeze(dict(data))

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"Profile({self.name!r}, id={self.id!r}, version={self.version!r})"

    def __reduce__(self) -> tuple[Any, ...]:  # picklable for Dask workers
        return (Profile, (self.name, thaw(self._data), self.sha256))

    @property
    def id(self) -> str:
        return str(self._data.get("id", self.name))

    @property
    def version(self) -> str:
        return str(self._data.get("version", ""))

    def param(self, *path: str) -> Param:
        """The parameter at ``path`` (``param("pca", "seed")``) with its tag and source."""
        node: Any = self._data
        for key in path:
            node = node[key]
        if isinstance(node, Mapping) and "value" in node:
            return Param(node["value"], str(node.get("tag", "")), str(node.get("source", "")))
        return Param(node)

    def value(self, *path: str) -> Any:
        """Shorthand for ``param(*path).value``."""
        return self.param(*path).value

    def with_overrides(self, overrides: Mapping[str, Param]) -> Profile:
        """A new profile with top-level parameters replaced (e.g. from the run configuration)."""
        data = thaw(self._data)
        for key, p in overrides.items():
            data[key] = {"value": p.value, "tag": p.tag, "source": p.source}
        return Profile(self.name, data, self.sha256)

    def provenance(self) -> dict[str, str]:
        """``{id, version, sha256}`` for the metadata of outputs."""
        return {"id": self.id, "version": self.version, "sha256": self.sha256}

    def to_dict(self) -> dict[str, Any]:
        """Plain copy of the content (for metadata JSON)."""
        return thaw(self._data)

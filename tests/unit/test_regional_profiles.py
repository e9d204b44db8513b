"""Every value of the regional method profiles carries a verification tag of the spec's legend."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from eqi.resources import load_profile

TAGS = {"[V]", "[V-impl]", "[P]", "[U]", "[D]"}


def _walk(node, path=()):
    if isinstance(node, Mapping):
        if "value" in node:
            yield path, node
            return
        for k, v in node.items():
            yield from _walk(v, (*path, str(k)))
    # lists are class tables (codes in "value"): tagged as a whole, checked below


@pytest.mark.parametrize("name", ["ei-hj192-2015", "eqi-2021", "trend", "eq-hj1172-2021"])
def test_every_parameter_is_tagged(name):
    profile = load_profile(name)
    entries = list(_walk(dict(profile)))
    assert entries, name
    for path, entry in entries:
        assert entry.get("tag") in TAGS, f"{name}: {'.'.join(path)} has tag {entry.get('tag')!r}"
        assert entry.get("source"), f"{name}: {'.'.join(path)} has no source"


def test_habitat_sub_weights_and_tables_are_tagged():
    p = load_profile("ei-hj192-2015")
    for group in p["habitat_quality"]["groups"].values():
        for sub in group["classes"]:
            assert sub["tag"] in TAGS and sub["source"]
    for key in ("grades", "change_classes", "restriction"):
        assert p[key]["tag"] in TAGS and p[key]["source"]
    q = load_profile("eqi-2021")
    for key in ("grades", "change_classes"):
        assert q[key]["tag"] in TAGS and q[key]["source"]
    for ind in q["indicators"].values():
        assert ind["tag"] in TAGS and ind["reference"]["tag"] in TAGS and ind["weight"]["tag"] in TAGS

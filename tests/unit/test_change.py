"""Class tables and transitions (eqi.science.change): checks of the tables, exact deltas, codes."""

from __future__ import annotations

import math

import numpy as np
import pytest

from eqi.errors import ConfigError
from eqi.science.change import (
    classify_label,
    exact_delta,
    intervals,
    matrix_from_code_areas,
    transition_code,
)


def _table(*entries):
    return [dict(zip(("lower", "upper", "closed", "label_zh"), e, strict=True)) for e in entries]


def test_table_must_cover_the_line_without_overlap_or_gap():
    ok = intervals(_table((None, 0, "left", "neg"), (0, None, "left", "pos")))
    assert classify_label(0.0, ok) == "pos" and classify_label(-1e-9, ok) == "neg"
    assert classify_label(math.nan, ok) is None
    with pytest.raises(ConfigError, match="overlap or leave a gap"):
        intervals(_table((None, 0, "both", "neg"), (0, None, "left", "pos")))  # 0 in both
    with pytest.raises(ConfigError, match="overlap or leave a gap"):
        intervals(_table((None, 0, "left", "neg"), (0, None, "right", "pos")))  # 0 in neither
    with pytest.raises(ConfigError, match="overlap or leave a gap"):
        intervals(_table((None, 0, "left", "neg"), (1, None, "left", "pos")))  # gap (0, 1)
    with pytest.raises(ConfigError, match="whole number line"):
        intervals(_table((0, 1, "left", "a"), (1, None, "left", "b")))


def test_exact_delta():
    assert exact_delta(29.01, 32.01) == 3.0
    assert math.isnan(exact_delta(None, 1.0)) and math.isnan(exact_delta(1.0, math.nan))


def test_transition_code_and_matrix_from_code_areas():
    before = np.array([[21, 21], [0, 31]], dtype=np.uint8)
    after = np.array([[21, 51], [31, 0]], dtype=np.uint8)
    code = transition_code(before, after)
    assert code.dtype == np.uint16 and code.tolist() == [[2121, 2151], [0, 0]]
    m = matrix_from_code_areas({2121: 5.0, 2151: 2.0, 3121: 1.5, 0: 99.0}, classes=[21, 31, 51])
    assert m.loc[21, 21] == 5.0 and m.loc[21, 51] == 2.0 and m.loc[31, 21] == 1.5
    assert m.to_numpy().sum() == 8.5  # nodata left out
    with pytest.raises(ValueError, match="< 100"):
        transition_code(np.array([100]), np.array([1]))

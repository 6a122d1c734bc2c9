"""Inpainting evaluation pieces: the hole composite and per-bin aggregation/formatting."""
import json

import numpy as np
import pytest

from ppir.errors import DataError
from ppir.metrics.inpainting import (aggregate_by_group, composite_with_hole_mask, format_table,
                                     write_table_json)


def test_composite_keeps_known_pixels_and_fills_holes():
    """With mask 1 = hole, the composite takes the output in holes and the ground truth
    elsewhere; a 1-channel mask broadcasts over the colour channels."""
    gt = np.zeros((3, 2, 2), np.float32)
    out = np.ones((3, 2, 2), np.float32)
    hole = np.array([[[1, 0], [0, 1]]], np.float32)
    comp = composite_with_hole_mask(gt, out, hole)
    np.testing.assert_array_equal(comp, np.broadcast_to(hole, (3, 2, 2)))


def test_aggregate_by_group_means_per_bin_and_overall(tmp_path):
    """Each bin gets the mean of its rows and its count; 'all' is the mean over every image
    (not the mean of bin means); order of first appearance is kept; the text table has one line
    per bin and the JSON round-trips (inf written as 'inf')."""
    rows = [{"psnr": 30.0, "mae": 0.01}, {"psnr": 20.0, "mae": 0.05},
            {"psnr": 32.0, "mae": 0.03}, {"psnr": float("inf"), "mae": 0.0}]
    groups = ["0%-20%", "20%-40%", "0%-20%", "40%-60%"]
    table = aggregate_by_group(rows, groups)
    assert list(table) == ["0%-20%", "20%-40%", "40%-60%", "all"]
    assert table["0%-20%"] == {"psnr": 31.0, "mae": pytest.approx(0.02), "count": 2}
    assert table["20%-40%"]["count"] == 1 and table["all"]["count"] == 4
    assert table["all"]["mae"] == pytest.approx(0.0225)
    finite = aggregate_by_group(rows[:3], groups[:3])
    assert finite["all"]["psnr"] == pytest.approx(82 / 3)  # bin means would give 26.0
    text = format_table(finite).splitlines()
    assert text[0].split() == ["group", "count", "psnr", "mae"]
    assert text[1].split() == ["0%-20%", "2", "31.0000", "0.0200"]
    assert text[-1].split()[0] == "all" and len(text) == 4
    path = write_table_json(str(tmp_path / "res" / "table.json"), table)
    loaded = json.load(open(path))
    assert loaded["40%-60%"]["psnr"] == "inf" and loaded["all"]["count"] == 4


def test_aggregate_refuses_inconsistent_input():
    """Mismatched lengths, differing metric names, no rows or a group called 'all' fail in one
    line."""
    with pytest.raises(DataError, match="2 rows but 1 groups"):
        aggregate_by_group([{"a": 1}, {"a": 2}], ["x"])
    with pytest.raises(DataError, match="row 1 has metrics"):
        aggregate_by_group([{"a": 1}, {"b": 2}], ["x", "y"])
    with pytest.raises(DataError, match="no rows"):
        aggregate_by_group([], [])
    with pytest.raises(DataError, match="reserved"):
        aggregate_by_group([{"a": 1}], ["all"])

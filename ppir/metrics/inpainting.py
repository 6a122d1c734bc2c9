"""Inpainting evaluation: the composite that is scored, and per-ratio-bin result tables.

Inpainting papers score the composite (known pixels from the ground truth, holes from the
network) and report one row per hole-ratio bin. The evaluator collects one row of metric values
per image plus the image's group (the dataset's `group`, e.g. "20%-40%"), then:

    table = aggregate_by_group(rows, groups)    # {group: {metric: mean, 'count': n}, 'all': ...}
    print(format_table(table))
    write_table_json(path, table)
"""
import json
import math

from ppir.errors import DataError

ALL = "all"


def composite_with_hole_mask(gt, out, hole_mask):
    """``gt * (1 - hole_mask) + out * hole_mask`` with hole_mask 1 = hole, 0 = known pixel.

    The data layer's convention; works on numpy arrays and Paddle tensors alike (broadcasting a
    1-channel mask over the colour channels). CTSDG's own mask is 1 = known: pass ``1 - M``.
    """
    return gt * (1 - hole_mask) + out * hole_mask


def aggregate_by_group(rows, groups):
    """Mean of every metric per group and over all rows.

    Args:
        rows: one mapping {metric name: value} per image, all with the same names.
        groups: the group of each row (same length).

    Returns:
        {group: {metric: mean, ..., 'count': n}} in order of first appearance, then 'all' (the
        mean over every image, not the mean of the group means).
    """
    rows, groups = list(rows), list(groups)
    if len(rows) != len(groups):
        raise DataError(f"aggregate_by_group: {len(rows)} rows but {len(groups)} groups")
    if not rows:
        raise DataError("aggregate_by_group: no rows to aggregate")
    names = list(rows[0])
    for i, row in enumerate(rows):
        if list(row) != names:
            raise DataError(f"aggregate_by_group: row {i} has metrics {sorted(row)}, "
                            f"row 0 has {sorted(names)}")
    members = {}
    for row, group in zip(rows, groups):
        if str(group) == ALL:
            raise DataError(f"aggregate_by_group: '{ALL}' is reserved for the overall row")
        members.setdefault(str(group), []).append(row)
    members[ALL] = rows
    return {group: dict({n: _mean([r[n] for r in part]) for n in names}, count=len(part))
            for group, part in members.items()}


def _mean(values):
    return float(math.fsum(float(v) for v in values) / len(values))


def format_table(table, digits=4):
    """Text table of aggregate_by_group's result: one line per group, metrics as columns."""
    metrics = [k for k in next(iter(table.values())) if k != "count"]
    header = ["group", "count"] + metrics
    lines = [[str(g), str(row["count"])] + [f"{row[m]:.{digits}f}" for m in metrics]
             for g, row in table.items()]
    widths = [max(len(x) for x in col) for col in zip(header, *lines)]
    fmt = "  ".join(f"{{:<{w}}}" if i == 0 else f"{{:>{w}}}" for i, w in enumerate(widths))
    return "\n".join(fmt.format(*line) for line in [header] + lines)


def table_json(table):
    """The table (or a mapping of tables) as JSON text; infinite PSNRs and the NaN FID of a
    one-image group become the strings 'inf' / 'nan', which strict JSON readers accept."""
    def clean(v):
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        return str(v) if isinstance(v, float) and (math.isinf(v) or math.isnan(v)) else v

    return json.dumps(clean(table), indent=1, allow_nan=False) + "\n"


def write_table_json(path, table, what="--json"):
    """Write table_json(table) to `path` as a ppir output (ppir.utils.paths.write_output_file;
    the caller has checked the path with check_output_file); returns path."""
    from ppir.utils.paths import write_output_file

    write_output_file(path, table_json(table), what)
    return path

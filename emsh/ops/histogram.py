"""Histograms of a doc-file column: HD D (alias HD) and HD RD (alias HD R).

SPIDER's ``HD`` family (``hisd.f``), with its prompts in its order. The histogram has
``n`` bins of width ``w = (max - min) / (n - 1)`` starting at ``min``: bin ``j``
(1-based) holds the values in ``[min + (j-1) w, min + j w)``, so the maximum falls in
the last bin, as SPIDER lays them out. ``HD D`` takes min and max from the column;
``HD RD`` asks for them (``HISTOGRAM RANGE MIN & MAX``) and leaves out values below
the minimum or at and past ``max + w``. (SPIDER truncates toward zero there, so it
also counts values less than one bin below the minimum in bin 1; emsh does not.)

Every key counts once, with its last line (SPIDER's in-core doc). The output doc has
one line per bin: key = bin number, register 1 = the bin's lower boundary, register 2
= its occupancy, under SPIDER's heading comment. With ``*`` for the output doc the
histogram is drawn as text in the results log instead. The log gets SPIDER's summary
(range, keys, bins, bin size, mean, mode, S.D. of the counted values); the mode is
the fullest bin refined by a parabola through it and its neighbours (the last of equal
maxima, as SPIDER). Registers on the operation line receive the mean, mode and S.D.
"""

from __future__ import annotations

import numpy as np

from emsh.spec import Field, Operation, Prompt

_HEADING = " BIN   BOUNDARY     OCCUPANCY"
_COLUMN = "REGISTER (COLUMN) USED FOR HISTOGRAM"


def column_values(doc, column: int) -> np.ndarray:
    """Register ``column`` of every key's last line (SPIDER's in-core doc), key order."""
    return doc.incore()[1][:, column - 1].astype(np.float64)


def doc_histogram(values, n_bins: int, value_range: tuple[float, float] | None = None):
    """SPIDER's doc-column histogram.

    Args:
        values: the column (float).
        n_bins: number of bins (>= 2).
        value_range: ``(min, max)``; None takes them from the values.

    Returns:
        ``(lower, counts, width, inside)``: the lower boundary of each bin, the counts,
        the bin width ``(max - min) / (n_bins - 1)`` and a mask of the counted values.

    Raises:
        ValueError: fewer than 2 bins, or an empty range (max <= min).
    """
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    if n_bins < 2:
        raise ValueError(f"need at least 2 bins, got {n_bins}")
    lo, hi = (float(v.min()), float(v.max())) if value_range is None else value_range
    if not hi > lo:
        raise ValueError(f"the histogram range {lo:g} .. {hi:g} is empty")
    width = (hi - lo) / (n_bins - 1)
    idx = np.floor((v - lo) * (n_bins - 1) / (hi - lo))    # max -> n_bins - 1 exactly
    if value_range is None:           # every value is in range; rounding must not drop max
        idx = np.clip(idx, 0, n_bins - 1)
    inside = (idx >= 0) & (idx <= n_bins - 1)
    counts = np.bincount(idx[inside].astype(np.int64), minlength=n_bins).astype(np.float64)
    lower = lo + width * np.arange(n_bins)
    return lower, counts, width, inside


def histogram_mode(lower, counts, width) -> float:
    """SPIDER's mode: the (last) fullest bin, refined by a parabola through its neighbours."""
    c = np.asarray(counts, dtype=np.float64)
    top = int(c.size - 1 - np.argmax(c[::-1]))          # the last of equal maxima
    pos = float(top)
    if 0 < top < c.size - 1:
        ym1, y1, ymax = c[top - 1], c[top + 1], c[top]
        den = ym1 + y1 - 2.0 * ymax
        if den != 0:
            pos += (ym1 - y1) * 0.5 / den
    return float(lower[0] + pos * width)


def _text_plot(ctx, lower, counts) -> None:
    """The histogram as rows of asterisks in the results log (no output doc)."""
    top = counts.max() if counts.size and counts.max() > 0 else 1.0
    ctx.log(" ")
    for lo, c in zip(lower, counts):
        ctx.log(f" {lo:12.5g} {int(c):8d} |{'*' * int(round(50 * c / top))}")


def hd(ctx, doc, column, n_bins, out):
    """HD D / HD: histogram of a doc column over its own range."""
    return _histogram(ctx, doc, column, n_bins, None, out)


def hd_range(ctx, doc, column, n_bins, hmin, hmax, out):
    """HD RD / HD R: histogram of a doc column over a given range."""
    ctx.check(hmax > hmin, f"the range {hmin:g} .. {hmax:g} is empty; give min < max",
              "HISTOGRAM RANGE MIN & MAX")
    return _histogram(ctx, doc, column, n_bins, (float(hmin), float(hmax)), out)


def _histogram(ctx, doc, column, n_bins, value_range, out):
    from emsh.io.docfile import read_doc
    from emsh.ops import _util as U

    d = read_doc(U.resolve(ctx, doc))
    ctx.log(f"  Doc file has:{d.n_cols}  registers and:{d.n_lines} keys,  Highest key in "
            f"use:{d.max_key}")
    ctx.check(d.n_lines > 0, f"{doc}: the doc holds no data lines", "INPUT DOCUMENT FILE")
    ctx.check(1 <= column <= d.n_cols, f"{doc}: register {column} not in 1..{d.n_cols}",
              _COLUMN)
    ctx.check(n_bins >= 2, f"{n_bins} bins: at least 2 are needed", "NUMBER OF BINS")
    v = column_values(d, column)
    ctx.check(value_range is not None or v.max() > v.min(),
              f"{doc}: register {column} holds one value ({v.min():g}) for every key; "
              "there is no range to histogram", _COLUMN)
    lower, counts, width, inside = doc_histogram(v, n_bins, value_range)
    used = v[inside]
    ctx.check(used.size >= 2, f"{doc}: {used.size} value(s) in the histogram range; the S.D. "
              "needs at least 2", _COLUMN)
    if out is not None:
        U.write_session_doc(ctx, out, np.arange(1, n_bins + 1), np.stack([lower, counts], 1),
                            _HEADING)
    elif ctx.is_root:
        _text_plot(ctx, lower, counts)
    mean, sd = float(used.mean()), float(used.std(ddof=1))
    mode = histogram_mode(lower, counts, width)
    lo, hi = lower[0], lower[0] + width * (n_bins - 1)
    ctx.log(" ")
    ctx.log(f"  HISTOGRAM RANGE:   {lo:11.4g}   .........     {hi:11.4g}")
    ctx.log(f"  FILE KEYS:         {float(v.size):11.4g}   HIST. KEYS:   {float(used.size):11.4g}")
    ctx.log(f"  NO. OF BINS:       {float(n_bins):11.4g}   BIN SIZE:     {width:11.4g}")
    ctx.log(f"  HIST. MEAN:        {mean:11.4g}   HIST. MODE:   {mode:11.4g}")
    ctx.log(f"  HIST. S.D.:        {sd:11.4g}")
    ctx.log(" ")
    return mean, mode, sd


_IN = Prompt("doc", "INPUT DOCUMENT FILE", kind="doc")
_COL = Prompt("column", _COLUMN, fields=(
    Field("column", "int", min=1, help="register number (1 = first value after the count)"),))
_BINS = Prompt("bins", "NUMBER OF BINS", fields=(Field("n_bins", "int", 128, min=2),))
_OUT = Prompt("out", "OUTPUT DOC FILE (OR * IF NONE)", kind="doc_out", optional=True,
              help="key = bin: lower boundary, occupancy; * draws the histogram in the log")
_HELP = (
    "SPIDER's HD family, prompts in its order. n bins of width w = (max - min)/(n - 1) "
    "from min: bin j holds [min + (j-1) w, min + j w), so the maximum opens the last bin. "
    "HD D takes min and max from the column; HD RD asks for them and leaves out values "
    "below min or at and past max + w (SPIDER also counts values less than one bin below "
    "min in bin 1; emsh does not). Every key counts once, with its last line. The output "
    "doc has key = bin, register 1 = lower boundary, 2 = occupancy; * draws the histogram "
    "in the results log instead. The log gets SPIDER's summary (range, keys, bins, bin "
    "size, mean, mode, S.D. with N-1 of the counted values); the mode is the last fullest "
    "bin refined by a parabola through its neighbours. Registers on the operation line "
    "get the mean, mode and S.D. An existing output doc is replaced.")

HD_D = Operation(
    "HD D", "Histogram of a doc-file column into a doc file", impl=hd, aliases=("HD",),
    outputs=("mean", "mode", "sd"), see_also=("HD RD", "DOC STAT"), help=_HELP,
    prompts=(_IN, _COL, _BINS, _OUT))

HD_RD = Operation(
    "HD RD", "Histogram of a doc-file column over a given range", impl=hd_range,
    aliases=("HD R",), outputs=("mean", "mode", "sd"), see_also=("HD D",), help=_HELP,
    prompts=(_IN, _COL, _BINS,
             Prompt("range", "HISTOGRAM RANGE MIN & MAX",
                    fields=(Field("hmin", "float"), Field("hmax", "float"))),
             _OUT))

OPERATIONS = [HD_D, HD_RD]

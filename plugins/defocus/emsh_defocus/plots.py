"""PNG plots of the defocus-group pipeline: FSC curves, correlation histograms, views.

Figures are drawn with matplotlib's Agg canvas (no display, no pyplot state) and
written atomically (a temporary file renamed onto the target, :mod:`emsh.io._atomic`);
an existing plot of the same name is replaced. :func:`plot_fsc` is general (any number
of curves, frequencies in cycles/pixel, 1/Å with a pixel size) and can serve other
callers (the demo). matplotlib is imported only when a plot is drawn.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["png_path", "new_figure", "save_png", "fsc_resolution", "plot_fsc",
           "plot_cc_histogram", "plot_views"]

FSC_THRESHOLDS = (0.5, 0.143)


def png_path(answer: str, data_ext: str = "") -> str:
    """The PNG file an answer names: a name without extension, or with the session's data
    extension (which the interpreter appends to bare names), gets ``.png``; any other
    extension is kept as written."""
    p = Path(str(answer))
    if not p.suffix:
        return str(p) + ".png"
    if data_ext and p.suffix.lower() == "." + data_ext.lower().lstrip("."):
        return str(p.with_suffix(".png"))
    return str(p)


def new_figure(width: float = 6.4, height: float = 4.8, **subplot):
    """``(figure, axes)`` on an Agg canvas; ``subplot`` goes to ``add_subplot``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot(1, 1, 1, **subplot)


def save_png(fig, path, dpi: int = 100) -> None:
    """Write ``fig`` as PNG atomically to ``path`` (replacing an existing file)."""
    from emsh.io._atomic import atomic_path

    fig.tight_layout()
    with atomic_path(path, overwrite=True) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)


# ----------------------------------------------------------------------------- FSC
def fsc_resolution(freq, curve, threshold: float) -> tuple[float, bool]:
    """``(frequency, crossed)``: where the curve last falls below ``threshold``
    (:func:`emsh.kernels.fsc.resolution`, linear interpolation, cycles/pixel) and
    whether it does at all (if not, the frequency is the last one)."""
    from emsh.kernels.fsc import resolution

    c = np.asarray(curve, dtype=np.float64)
    crossed = bool(np.any((c[:-1] >= threshold) & (c[1:] < threshold)))
    return resolution(freq, c, threshold), crossed


def _res_text(f: float, crossed: bool, apix: float | None) -> str:
    if f <= 0:
        return "n/a"
    unit = "Å" if apix else "px"
    val = (apix or 1.0) / f
    return f"{val:.2f} {unit}" if crossed else f"< {val:.2f} {unit} (no crossing)"


def plot_fsc(path, freq, curves, *, apix: float | None = None,
             thresholds=FSC_THRESHOLDS, title: str | None = None) -> None:
    """FSC curves against spatial frequency, with threshold lines.

    Args:
        path: PNG file to write.
        freq: shell frequencies in cycles/pixel.
        curves: one curve, or ``{label: curve}`` (all on ``freq``).
        apix: pixel size in Å: the x axis is then 1/Å and resolutions are in Å; None or
            0: cycles/pixel and pixels.
        thresholds: horizontal lines; the first curve's crossings are marked.
        title: default: the first curve's resolution at each threshold.
    """
    freq = np.asarray(freq, dtype=np.float64)
    if not isinstance(curves, dict):
        curves = {"FSC": curves}
    scale = 1.0 / apix if apix else 1.0
    fig, ax = new_figure(6.4, 4.4)
    for label, c in curves.items():
        ax.plot(freq * scale, np.asarray(c, dtype=np.float64), lw=1.5, label=label)
    first = np.asarray(next(iter(curves.values())), dtype=np.float64)
    parts = []
    for t, colour in zip(thresholds, ("tab:red", "tab:green", "tab:purple", "tab:orange")):
        f, crossed = fsc_resolution(freq, first, t)
        ax.axhline(t, color=colour, lw=0.8, ls="--", label=f"FSC = {t:g}")
        if crossed:
            ax.axvline(f * scale, color=colour, lw=0.8, ls=":")
        parts.append(f"FSC {t:g}: {_res_text(f, crossed, apix)}")
    ax.set_xlabel("spatial frequency (1/Å)" if apix else "spatial frequency (1/pixel)")
    ax.set_ylabel("FSC")
    ax.set_xlim(0, max(float(freq.max()) * scale, 1e-12) if freq.size else 1)
    ax.set_ylim(-0.1, 1.05)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper right")
    ax.set_title(title if title is not None else "   ".join(parts), fontsize=10)
    save_png(fig, path)


# ----------------------------------------------------------------------------- CC histogram
def plot_cc_histogram(path, groups: dict, thresholds, *, kept: dict | None = None,
                      bins: int | None = None) -> None:
    """Stacked histogram of the correlation of every group, the threshold(s) marked.

    Args:
        groups: ``{group: correlations}``.
        thresholds: one threshold for all groups, or ``{group: threshold}`` (fraction
            mode), each drawn in its group's colour; None entries are skipped.
        kept: ``{group: particles kept}`` for the title.
        bins: number of bins shared by all groups (default: from the total count).
    """
    import matplotlib

    names = [g for g in groups if np.asarray(groups[g]).size]
    data = [np.asarray(groups[g], dtype=np.float64) for g in names]
    allcc = np.concatenate(data) if data else np.zeros(0)
    fig, ax = new_figure(7.0, 4.4)
    n = allcc.size
    if n:
        nb = bins or int(np.clip(np.sqrt(n) * 1.5, 10, 80))
        lo, hi = float(allcc.min()), float(allcc.max())
        edges = np.linspace(lo, hi if hi > lo else lo + 1e-3, nb + 1)
        cmap = matplotlib.colormaps["tab20" if len(names) > 10 else "tab10"]
        colours = [cmap(i % cmap.N) for i in range(len(names))]
        ax.hist(data, bins=edges, stacked=True, color=colours, alpha=0.85,
                label=[f"group {g}" for g in names])
        ax.hist(allcc, bins=edges, histtype="step", color="k", lw=1.0, label="all groups")
        if isinstance(thresholds, dict):
            for g, c in zip(names, colours):
                t = thresholds.get(g)
                if t is not None:
                    ax.axvline(t, color=c, lw=1.2, ls="--")
        elif thresholds is not None:
            ax.axvline(float(thresholds), color="tab:red", lw=1.5, ls="--",
                       label=f"CC ≥ {float(thresholds):.4g}")
        if len(names) <= 12:
            ax.legend(fontsize=7, ncol=2)
    total_kept = sum(kept.values()) if kept else None
    title = f"Correlation of {n} particles in {len(names)} group(s)"
    if total_kept is not None and n:
        title += f": kept {total_kept} ({100.0 * total_kept / n:.1f}%)"
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("correlation (AP SH register 11)")
    ax.set_ylabel("particles")
    save_png(fig, path)


# ----------------------------------------------------------------------------- views
def plot_views(path, views, *, title: str | None = None) -> None:
    """Projection directions on a polar plot: angle = phi, radius = theta (degrees), marker
    area and colour = particle count. Mirrored matches are drawn at the antipode
    ``(180 - theta, phi + 180)``, outside the dashed equator circle for references on the
    upper hemisphere; references without particles are small grey dots.

    Args:
        views: a :class:`emsh_defocus.views.ViewCounts`.
    """
    from .views import antipode

    th_m, ph_m = antipode(views.theta, views.phi)
    theta = np.concatenate([views.theta, th_m])
    phi = np.concatenate([views.phi, ph_m])
    count = np.concatenate([views.straight, views.mirrored]).astype(np.float64)
    is_ref = np.r_[np.ones(views.ref.size, bool), np.zeros(views.ref.size, bool)]
    fig, ax = new_figure(6.4, 5.6, projection="polar")
    empty = (count == 0) & is_ref
    ax.scatter(np.radians(phi[empty]), theta[empty], s=4, c="0.7", marker=".",
               label="no particles")
    hit = count > 0
    top = count.max() if count.size and count.max() > 0 else 1.0
    if hit.any():
        sc = ax.scatter(np.radians(phi[hit]), theta[hit], s=8 + 160 * count[hit] / top,
                        c=count[hit], cmap="viridis", vmin=0, vmax=top, alpha=0.85,
                        edgecolors="k", linewidths=0.3)
        fig.colorbar(sc, ax=ax, shrink=0.75, pad=0.1, label="particles")
    rmax = 180.0 if (views.mirrored.sum() > 0 or np.any(views.theta > 90)) else 90.0
    ring = np.linspace(0, 2 * np.pi, 181)
    if rmax > 90:
        ax.plot(ring, np.full(ring.shape, 90.0), color="0.4", lw=0.8, ls="--")
    ax.set_ylim(0, rmax)
    ax.set_rticks([30, 60, 90] + ([120, 150, 180] if rmax > 90 else []))
    ax.set_rlabel_position(22.5)
    n = int(views.count.sum())
    default = (f"{n} particles in {int((views.count > 0).sum())} of {views.ref.size} views"
               + (" (mirrored: theta > 90)" if rmax > 90 else "")
               + (f"; {views.unmatched} unmatched" if views.unmatched else ""))
    ax.set_title(title if title is not None else default, fontsize=10)
    save_png(fig, path)

"""The figures of the evaluation report (:mod:`training.report`, :mod:`training.prefix`)."""

from __future__ import annotations

from typing import Any

#: Resolution of every report plot.
DPI = 110


def figure(ncols: int = 1, *, width: float = 5.5, height: float = 4.5) -> tuple[Any, Any]:
    """A figure on its own Agg canvas, so neither pyplot nor the global backend is touched.

    Parameters
    ----------
    ncols : int
        Panels side by side, each ``width`` wide.
    width, height : float, keyword-only
        Size of one panel in inches.

    Returns
    -------
    (Figure, array of Axes)
        The figure and its ``ncols`` axes, in one row.
    """
    # matplotlib imported here: most commands never draw.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, axes

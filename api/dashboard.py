"""The supervisor dashboard's plots, as PNG bytes (matplotlib, Agg, no pyplot state).

Each plot takes the dict of :meth:`api.store.Store.dashboard_counts` and draws with the
Okabe-Ito palette, which stays distinguishable with the common colour-vision deficiencies.
Titles are English with the Indonesian in parentheses.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from classifier.errors import InvalidParameterError

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

#: Okabe-Ito colours per outcome.
OUTCOME_COLOURS: dict[str, str] = {
    "emergency": "#0072B2",
    "non_emergency": "#56B4E9",
    "prank": "#D55E00",
    "ghost": "#CC79A7",
    "unlabelled": "#999999",
}
OUTCOME_NAMES: dict[str, str] = {
    "emergency": "emergency (darurat)",
    "non_emergency": "non-emergency (bukan darurat)",
    "prank": "prank (iseng)",
    "ghost": "ghost (hantu/diam)",
    "unlabelled": "no outcome (belum dilabeli)",
}
WEEKDAYS = ("Mon/Sen", "Tue/Sel", "Wed/Rab", "Thu/Kam", "Fri/Jum", "Sat/Sab", "Sun/Min")
EMPTY_TEXT = "no calls yet / belum ada panggilan"


def _figure(width: float = 8.0, height: float = 4.0) -> tuple[Figure, Axes]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    return fig, fig.add_subplot()


def _png(fig: Figure) -> bytes:
    # Figure.savefig uses the Agg canvas by default: no backend switch, no global state.
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def _empty(ax: Axes, title: str) -> None:
    ax.set_title(title)
    ax.text(0.5, 0.5, EMPTY_TEXT, ha="center", va="center", fontsize=14, transform=ax.transAxes)
    ax.set_axis_off()


def _calls_per_day(data: dict[str, Any], ax: Axes) -> None:
    title = "Calls per day by outcome (Panggilan per hari menurut hasil)"
    days = data.get("days") or []
    if not days:
        _empty(ax, title)
        return
    dates = [d["date"] for d in days]
    x = range(len(dates))
    bottom = [0] * len(dates)
    for outcome, colour in OUTCOME_COLOURS.items():
        values = [int(d.get(outcome, 0)) for d in days]
        ax.bar(x, values, bottom=bottom, color=colour, label=OUTCOME_NAMES[outcome])
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    ax.set_xticks(list(x), dates, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("calls (panggilan)")
    ax.set_title(title)
    ax.legend(fontsize=8, loc="upper left")


def _share_over_time(data: dict[str, Any], ax: Axes) -> None:
    title = "Prank and ghost share of labelled calls (Porsi iseng dan hantu)"
    share = data.get("share") or []
    if not share:
        _empty(ax, title)
        return
    dates = [s["date"] for s in share]
    x = list(range(len(dates)))
    ax.plot(
        x,
        [100 * s["prank_share"] for s in share],
        marker="o",
        color=OUTCOME_COLOURS["prank"],
        label=OUTCOME_NAMES["prank"],
    )
    ax.plot(
        x,
        [100 * s["ghost_share"] for s in share],
        marker="s",
        linestyle="--",
        color=OUTCOME_COLOURS["ghost"],
        label=OUTCOME_NAMES["ghost"],
    )
    ax.set_xticks(x, dates, rotation=45, ha="right", fontsize=8)
    ax.set_ylim(0, 100)
    ax.set_ylabel("% of labelled calls (% panggilan berlabel)")
    ax.set_title(title)
    ax.legend(fontsize=8)


def _heatmap(data: dict[str, Any], ax: Axes) -> None:
    title = "Calls by weekday and hour (Panggilan per hari dan jam)"
    grid = data.get("heatmap") or [[0] * 24 for _ in range(7)]
    if not any(any(row) for row in grid):
        _empty(ax, title)
        return
    image = ax.imshow(grid, aspect="auto", cmap="cividis", interpolation="nearest")
    ax.set_yticks(range(7), WEEKDAYS)
    ax.set_xticks(range(0, 24, 2), [f"{h:02d}" for h in range(0, 24, 2)])
    ax.set_xlabel("hour of day (jam)")
    ax.set_title(title)
    ax.figure.colorbar(image, ax=ax, label="calls (panggilan)")


def _incident_types(data: dict[str, Any], ax: Axes) -> None:
    title = "Most frequent incident types (Jenis kejadian terbanyak)"
    types = data.get("incident_types") or []
    if not types:
        _empty(ax, title)
        return
    names = [t["type"] for t in types][::-1]  # most frequent at the top
    ax.barh(names, [t["calls"] for t in types][::-1], color=OUTCOME_COLOURS["emergency"])
    ax.set_xlabel("calls (panggilan)")
    ax.set_title(title)


_PLOTS: dict[str, Callable[[dict[str, Any], Axes], None]] = {
    "calls_per_day": _calls_per_day,
    "share_over_time": _share_over_time,
    "heatmap": _heatmap,
    "incident_types": _incident_types,
}
#: Names of the dashboard's plots.
PLOT_NAMES: tuple[str, ...] = tuple(_PLOTS)


def render_plot(name: str, data: dict[str, Any]) -> bytes:
    """One dashboard plot as PNG bytes.

    Parameters
    ----------
    name : str
        One of :data:`PLOT_NAMES`.
    data : dict
        :meth:`api.store.Store.dashboard_counts` output; empty lists draw a
        "no calls yet / belum ada panggilan" image.

    Returns
    -------
    bytes
        A PNG file, 800 x 400 pixels.

    Raises
    ------
    InvalidParameterError
        For an unknown name.
    """
    draw = _PLOTS.get(name)
    if draw is None:
        raise InvalidParameterError(
            f"unknown plot {name!r}; expected one of {', '.join(PLOT_NAMES)}"
        )
    fig, ax = _figure()
    draw(data, ax)
    return _png(fig)

"""The weekly report for management (issue 21): one printable HTML page per ISO week.

Shared by ``GET /v1/reports/weekly`` and ``callsift report``. Reads only, through
:meth:`api.store.Store.report_calls`. The page is self-contained (inline CSS with print
styles, charts as inline SVG) so it prints, mails and archives as one file.

A call's *outcome* is its disposition when a call-taker gave one, else the model's flag
(``possible_*``/``likely_*``), else "no flag" or "not scored". Days, weekdays and hours
are in the centre's time zone (``CALLSIFT_TIMEZONE``), else UTC; the page says which.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Any

from classifier.errors import InvalidParameterError

if TYPE_CHECKING:
    from api.store import Store

#: Outcome keys, in the order of the tables and the stacked bars.
OUTCOMES: tuple[str, ...] = (
    "emergency",
    "non_emergency",
    "prank",
    "ghost",
    "flag_prank",
    "flag_ghost",
    "no_flag",
    "not_scored",
)
COLOURS: dict[str, str] = {
    "emergency": "#c0392b",
    "non_emergency": "#2e86c1",
    "prank": "#e67e22",
    "ghost": "#7d3c98",
    "flag_prank": "#f5cba7",
    "flag_ghost": "#d2b4de",
    "no_flag": "#aab7b8",
    "not_scored": "#e5e8e8",
}
LANGS: tuple[str, ...] = ("en", "id")
#: How many earlier weeks the prank and ghost share is compared with.
EARLIER_WEEKS = 4
TOP_NUMBERS = 10
TOP_INCIDENTS = 10
_WEEK = re.compile(r"([0-9]{4})-W([0-9]{2})")
#: The week parameter's pattern in the OpenAPI schema (weeks 01 to 53).
WEEK_PATTERN = r"^[0-9]{4}-W(0[1-9]|[1-4][0-9]|5[0-3])$"

TEXT: dict[str, dict[str, str]] = {
    "en": {
        "title": "Weekly report {week}",
        "period": "{start} to {end}; times in {tz}.",
        "advisory": "Flags are advice only: every call is answered and handled.",
        "no_calls": "No calls were registered in this week.",
        "total": "Calls this week: {n}.",
        "per_day": "Calls per day by outcome",
        "per_day_note": "Outcome: the call-taker's disposition, else the model's flag.",
        "day": "Day",
        "total_col": "Total",
        "emergency": "Emergency",
        "non_emergency": "Not an emergency",
        "prank": "Prank",
        "ghost": "Ghost call",
        "flag_prank": "Prank (flag only)",
        "flag_ghost": "Ghost call (flag only)",
        "no_flag": "No flag",
        "not_scored": "Not scored",
        "share": "Prank and ghost share against the {n} earlier weeks",
        "share_note": "Share of all calls of the week whose outcome is prank or ghost call.",
        "week": "Week",
        "calls": "Calls",
        "prank_share": "Prank share",
        "ghost_share": "Ghost share",
        "heat": "Pranks by weekday and hour",
        "heat_note": "Calls whose outcome is prank (confirmed or flagged).",
        "numbers": "Numbers with the most confirmed pranks",
        "numbers_masked": "Numbers are masked; supervisors see them in full.",
        "numbers_full": "Numbers are shown in full: handle this page as confidential.",
        "numbers_none": "No confirmed pranks from a known number this week.",
        "number": "Number",
        "pranks": "Confirmed pranks",
        "incidents": "Incident types",
        "incidents_none": "No incident types are stored for this week's calls; section omitted.",
        "incident": "Incident type",
        "time": "Time call-takers spent on prank and ghost calls",
        # A count before a noun needs a plural form; after a colon it needs none.
        "time_note": "Sum of recording durations of confirmed calls; calls without a "
        "recording, not counted: {n}.",
        "minutes": "Minutes",
        "flags": "What the flags caught and missed",
        "flags_note": "Calls with both a model flag and a disposition.",
        "caught": "Flagged and confirmed (prank or ghost)",
        "cleared": "Flagged and cleared (emergency or not an emergency)",
        "missed": "Missed (no flag, confirmed prank or ghost)",
        "count": "Calls",
        "generated": "Generated {at}.",
        "weekdays": "Mon Tue Wed Thu Fri Sat Sun",
    },
    "id": {
        "title": "Laporan mingguan {week}",
        "period": "{start} sampai {end}; waktu dalam {tz}.",
        "advisory": "Tanda hanya saran: setiap panggilan tetap dijawab dan ditangani.",
        "no_calls": "Tidak ada panggilan yang tercatat pada minggu ini.",
        "total": "Panggilan minggu ini: {n}.",
        "per_day": "Panggilan per hari menurut hasil",
        "per_day_note": "Hasil: disposisi penerima panggilan, jika tidak ada, tanda model.",
        "day": "Hari",
        "total_col": "Jumlah",
        "emergency": "Darurat",
        "non_emergency": "Bukan darurat",
        "prank": "Iseng",
        "ghost": "Panggilan hantu",
        "flag_prank": "Iseng (hanya tanda)",
        "flag_ghost": "Panggilan hantu (hanya tanda)",
        "no_flag": "Tidak ditandai",
        "not_scored": "Belum dinilai",
        "share": "Porsi iseng dan hantu dibanding {n} minggu sebelumnya",
        "share_note": "Porsi dari semua panggilan minggu itu yang hasilnya iseng atau hantu.",
        "week": "Minggu",
        "calls": "Panggilan",
        "prank_share": "Porsi iseng",
        "ghost_share": "Porsi hantu",
        "heat": "Panggilan iseng menurut hari dan jam",
        "heat_note": "Panggilan yang hasilnya iseng (terkonfirmasi atau ditandai).",
        "numbers": "Nomor dengan panggilan iseng terkonfirmasi terbanyak",
        "numbers_masked": "Nomor disamarkan; supervisor melihatnya utuh.",
        "numbers_full": "Nomor ditampilkan utuh: perlakukan halaman ini sebagai rahasia.",
        "numbers_none": "Tidak ada panggilan iseng terkonfirmasi dari nomor yang dikenal "
        "minggu ini.",
        "number": "Nomor",
        "pranks": "Iseng terkonfirmasi",
        "incidents": "Jenis kejadian",
        "incidents_none": "Jenis kejadian tidak tersimpan untuk panggilan minggu ini; bagian "
        "ini dilewati.",
        "incident": "Jenis kejadian",
        "time": "Waktu penerima panggilan untuk panggilan iseng dan hantu",
        "time_note": "Jumlah durasi rekaman panggilan terkonfirmasi; {n} tanpa rekaman tidak "
        "dihitung.",
        "minutes": "Menit",
        "flags": "Yang ditangkap dan yang terlewat oleh tanda",
        "flags_note": "Panggilan yang memiliki tanda model dan disposisi.",
        "caught": "Ditandai dan terkonfirmasi (iseng atau hantu)",
        "cleared": "Ditandai lalu dinyatakan bersih (darurat atau bukan darurat)",
        "missed": "Terlewat (tidak ditandai, terkonfirmasi iseng atau hantu)",
        "count": "Panggilan",
        "generated": "Dibuat {at}.",
        "weekdays": "Sen Sel Rab Kam Jum Sab Min",
    },
}


def parse_week(text: str, *, tz: tzinfo | None = None, now: datetime | None = None) -> date:
    """The Monday of ISO week ``text`` (``YYYY-Www``).

    Raises
    ------
    InvalidParameterError
        For another format, a week the ISO year does not have, or a week that has not
        started yet (in ``tz``, default UTC).
    """
    match = _WEEK.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise InvalidParameterError(
            f"week must be an ISO week in the format YYYY-Www (e.g. 2026-W49); got {text[:40]!r}"
        )
    year, week = int(match.group(1)), int(match.group(2))
    try:
        monday = date.fromisocalendar(year, week, 1)
    except ValueError as exc:
        raise InvalidParameterError(
            f"week {text} does not exist: ISO year {year} has no week {week} "
            "(expected format YYYY-Www, weeks 01 to 52 or 53)"
        ) from exc
    today = (now or datetime.now(UTC)).astimezone(tz or UTC).date()
    if monday > today:
        raise InvalidParameterError(f"week {text} is in the future (today is {today.isoformat()})")
    return monday


def mask_number(number: str) -> str:
    """``+6281234567567`` -> ``+62812****567``: the operator prefix and the last 3 digits."""
    if len(number) <= 9:
        return "****" + number[-2:]
    return number[:6] + "****" + number[-3:]


def outcome(label: str | None, flag: str | None) -> str:
    """A call's outcome key (:data:`OUTCOMES`): disposition, else model flag."""
    if label:
        return label
    if flag is None:
        return "not_scored"
    if flag.endswith("_prank"):
        return "flag_prank"
    if flag.endswith("_ghost"):
        return "flag_ghost"
    return "no_flag"


@dataclass
class WeeklyReport:
    """What the page shows, as numbers (tests and the page read the same values)."""

    week: str
    start: date
    tz_name: str
    total: int = 0
    per_day: list[dict[str, int]] = field(default_factory=list)
    share: list[dict[str, Any]] = field(default_factory=list)
    heat: list[list[int]] = field(default_factory=lambda: [[0] * 24 for _ in range(7)])
    numbers: list[tuple[str, int]] = field(default_factory=list)
    incidents: list[tuple[str, int]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=lambda: {"prank": 0.0, "ghost": 0.0})
    calls_without_duration: int = 0
    flags: dict[str, int] = field(default_factory=lambda: {"caught": 0, "cleared": 0, "missed": 0})
    masked: bool = True


def _tz_name(tz: tzinfo | None) -> str:
    if tz is None:
        return "UTC"
    key = getattr(tz, "key", None)  # ZoneInfo
    return str(key) if key else str(tz.tzname(None) or tz)


def build_report(
    store: Store,
    *,
    week: str,
    tz: tzinfo | None,
    unmask: bool,
    now: datetime | None = None,
) -> WeeklyReport:
    """Read week ``week`` and the :data:`EARLIER_WEEKS` before it from ``store``.

    ``tz`` None means UTC. ``unmask`` shows full numbers (supervisors).
    """
    zone: tzinfo = tz or UTC
    monday = parse_week(week, tz=zone, now=now)
    first = monday - timedelta(weeks=EARLIER_WEEKS)

    def local_midnight(day: date) -> datetime:
        return datetime(day.year, day.month, day.day, tzinfo=zone)

    rows = store.report_calls(
        since=local_midnight(first), until=local_midnight(monday + timedelta(weeks=1))
    )
    report = WeeklyReport(week=week.strip(), start=monday, tz_name=_tz_name(tz), masked=not unmask)
    days = [{key: 0 for key in OUTCOMES} for _ in range(7)]
    weeks = [{"calls": 0, "prank": 0, "ghost": 0} for _ in range(EARLIER_WEEKS + 1)]
    numbers: dict[str, int] = {}
    incidents: dict[str, int] = {}
    for row in rows:
        local = row["started_at"].astimezone(zone)
        kind = outcome(row["label"], row["flag"])
        index = (local.date() - first).days // 7
        if not 0 <= index <= EARLIER_WEEKS:
            continue  # a local-midnight edge case of a changing UTC offset
        bucket = weeks[index]
        bucket["calls"] += 1
        if kind in ("prank", "flag_prank"):
            bucket["prank"] += 1
        elif kind in ("ghost", "flag_ghost"):
            bucket["ghost"] += 1
        if index != EARLIER_WEEKS:
            continue
        report.total += 1
        days[local.weekday()][kind] += 1
        if kind in ("prank", "flag_prank"):
            report.heat[local.weekday()][local.hour] += 1
        if kind == "prank" and row["caller_id"]:
            numbers[row["caller_id"]] = numbers.get(row["caller_id"], 0) + 1
        incident = row["incident_type"]
        if isinstance(incident, str) and incident.strip():
            incidents[incident.strip()] = incidents.get(incident.strip(), 0) + 1
        if kind in ("prank", "ghost"):
            if row["duration_s"] is None:
                report.calls_without_duration += 1
            else:
                report.seconds[kind] += float(row["duration_s"])
        if row["label"] and row["flag"] is not None:
            flagged = row["flag"] != "none"
            confirmed = row["label"] in ("prank", "ghost")
            if flagged and confirmed:
                report.flags["caught"] += 1
            elif flagged:
                report.flags["cleared"] += 1
            elif confirmed:
                report.flags["missed"] += 1
    report.per_day = days
    for i, bucket in enumerate(weeks):
        start = first + timedelta(weeks=i)
        iso = start.isocalendar()
        calls = bucket["calls"]
        report.share.append(
            {
                "week": f"{iso.year}-W{iso.week:02d}",
                "calls": calls,
                "prank_share": bucket["prank"] / calls if calls else None,
                "ghost_share": bucket["ghost"] / calls if calls else None,
            }
        )
    ranked = sorted(numbers.items(), key=lambda item: (-item[1], item[0]))[:TOP_NUMBERS]
    report.numbers = [(n if unmask else mask_number(n), c) for n, c in ranked]
    report.incidents = sorted(incidents.items(), key=lambda item: (-item[1], item[0]))[
        :TOP_INCIDENTS
    ]
    return report


# --- rendering ---------------------------------------------------------------------------

CSS = """
body{font-family:Arial,Helvetica,sans-serif;color:#222;margin:2em auto;max-width:60em;
font-size:11pt}
h1{font-size:18pt;margin-bottom:.2em}h2{font-size:13pt;margin-top:1.6em;
border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.5em 0}th,td{border:1px solid #ccc;padding:2px 6px;
text-align:right}th:first-child,td:first-child{text-align:left}
.note{color:#555;font-size:9pt}.heat td{width:1.4em;padding:1px;text-align:center;
font-size:8pt}.key span{display:inline-block;width:.9em;height:.9em;margin:0 .3em 0 1em}
.empty{font-size:13pt;font-weight:bold;padding:1em;border:2px solid #999}
@media print{body{margin:0;max-width:none;font-size:10pt}section{break-inside:avoid}
@page{size:A4;margin:15mm}}
"""


def _num(value: float, lang: str, digits: int = 1) -> str:
    text = f"{value:,.{digits}f}"
    if lang == "id":  # Indonesian: dot groups thousands, comma marks decimals
        text = text.replace(",", "_").replace(".", ",").replace("_", ".")
    return text


def _pct(value: float | None, lang: str) -> str:
    return "–" if value is None else _num(100 * value, lang) + "%"


def _e(value: object) -> str:
    return html.escape(str(value))


def _table(head: Sequence[str], rows: Sequence[Sequence[object]], cls: str = "") -> str:
    attr = f' class="{cls}"' if cls else ""
    out = [f"<table{attr}><thead><tr>"]
    out += [f"<th>{_e(h)}</th>" for h in head]
    out.append("</tr></thead><tbody>")
    for row in rows:
        out.append("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _stacked_bars(labels: Sequence[str], stacks: Sequence[Mapping[str, int]]) -> str:
    """Inline SVG: one stacked bar of :data:`OUTCOMES` per label."""
    width, height, pad = 560, 180, 24
    peak = max([sum(s.values()) for s in stacks] + [1])
    step = (width - pad) / max(len(labels), 1)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + 20}" '
        'role="img">'
    ]
    for i, (name, stack) in enumerate(zip(labels, stacks, strict=True)):
        x = pad + i * step + step * 0.15
        y = float(height)
        for key in OUTCOMES:
            h = stack.get(key, 0) / peak * (height - 10)
            if h > 0:
                y -= h
                parts.append(
                    f'<rect x="{x:.1f}" y="{y:.1f}" width="{step * 0.7:.1f}" height="{h:.1f}" '
                    f'fill="{COLOURS[key]}"/>'
                )
        parts.append(
            f'<text x="{x + step * 0.35:.1f}" y="{height + 14}" font-size="10" '
            f'text-anchor="middle">{_e(name)}</text>'
        )
    parts.append(f'<text x="0" y="12" font-size="10">{peak}</text></svg>')
    return "".join(parts)


def _share_bars(share: Sequence[Mapping[str, Any]], t: Mapping[str, str]) -> str:
    """Inline SVG: prank and ghost share side by side per week."""
    width, height, pad = 560, 160, 30
    peak = max([s[k] or 0 for s in share for k in ("prank_share", "ghost_share")] + [0.01])
    step = (width - pad) / len(share)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + 20}" '
        'role="img">'
    ]
    for i, row in enumerate(share):
        x = pad + i * step + step * 0.15
        for j, (key, colour) in enumerate((("prank_share", "prank"), ("ghost_share", "ghost"))):
            h = (row[key] or 0) / peak * (height - 10)
            parts.append(
                f'<rect x="{x + j * step * 0.35:.1f}" y="{height - h:.1f}" '
                f'width="{step * 0.33:.1f}" height="{h:.1f}" fill="{COLOURS[colour]}"/>'
            )
        parts.append(
            f'<text x="{x + step * 0.35:.1f}" y="{height + 14}" font-size="10" '
            f'text-anchor="middle">{_e(row["week"])}</text>'
        )
    parts.append(f'<text x="0" y="12" font-size="10">{_e(round(100 * peak, 1))}%</text></svg>')
    return "".join(parts)


def _key(keys: Sequence[str], t: Mapping[str, str]) -> str:
    return (
        '<p class="key note">'
        + "".join(f'<span style="background:{COLOURS[k]}"></span>{_e(t[k])}' for k in keys)
        + "</p>"
    )


def render_html(report: WeeklyReport, *, lang: str = "en", now: datetime | None = None) -> str:
    """The report as one self-contained HTML page in ``lang`` (``en`` or ``id``)."""
    if lang not in LANGS:
        raise InvalidParameterError(f"lang must be one of {', '.join(LANGS)}; got {lang!r}")
    t = TEXT[lang]
    weekdays = t["weekdays"].split()
    end = report.start + timedelta(days=6)
    body = [
        f"<h1>{_e(t['title'].format(week=report.week))}</h1>",
        f"<p>{_e(t['period'].format(start=report.start, end=end, tz=report.tz_name))}</p>",
        f'<p class="note">{_e(t["advisory"])}</p>',
    ]
    if report.total == 0:
        body.append(f'<p class="empty" id="no-calls">{_e(t["no_calls"])}</p>')
    else:
        body.append(f'<p id="total">{_e(t["total"].format(n=report.total))}</p>')
        day_names = [
            f"{weekdays[i]} {(report.start + timedelta(days=i)).strftime('%d-%m')}"
            for i in range(7)
        ]
        rows: list[list[object]] = [
            [day_names[i], *(d[k] for k in OUTCOMES), sum(d.values())]
            for i, d in enumerate(report.per_day)
        ]
        totals = {k: sum(d[k] for d in report.per_day) for k in OUTCOMES}
        rows.append([t["total_col"], *(totals[k] for k in OUTCOMES), report.total])
        body += [
            f'<section id="per-day"><h2>{_e(t["per_day"])}</h2>',
            _stacked_bars(day_names, report.per_day),
            _key(OUTCOMES, t),
            _table([t["day"], *(t[k] for k in OUTCOMES), t["total_col"]], rows),
            f'<p class="note">{_e(t["per_day_note"])}</p></section>',
        ]
    share_rows = [
        [s["week"], s["calls"], _pct(s["prank_share"], lang), _pct(s["ghost_share"], lang)]
        for s in report.share
    ]
    body += [
        f'<section id="share"><h2>{_e(t["share"].format(n=EARLIER_WEEKS))}</h2>',
        _share_bars(report.share, t),
        _key(("prank", "ghost"), t),
        _table([t["week"], t["calls"], t["prank_share"], t["ghost_share"]], share_rows),
        f'<p class="note">{_e(t["share_note"])}</p></section>',
    ]
    if report.total:
        peak = max(max(r) for r in report.heat) or 1
        heat = ['<table class="heat"><thead><tr><th></th>']
        heat += [f"<th>{h:02d}</th>" for h in range(24)]
        heat.append("</tr></thead><tbody>")
        for i, hours in enumerate(report.heat):
            heat.append(f"<tr><th>{_e(weekdays[i])}</th>")
            for n in hours:
                alpha = n / peak
                heat.append(f'<td style="background:rgba(230,126,34,{alpha:.2f})">{n or ""}</td>')
            heat.append("</tr>")
        heat.append("</tbody></table>")
        body += [
            f'<section id="heat"><h2>{_e(t["heat"])}</h2>',
            "".join(heat),
            f'<p class="note">{_e(t["heat_note"])}</p></section>',
            f'<section id="numbers"><h2>{_e(t["numbers"])}</h2>',
            _table([t["number"], t["pranks"]], report.numbers)
            if report.numbers
            else f"<p>{_e(t['numbers_none'])}</p>",
            f'<p class="note">{_e(t["numbers_masked" if report.masked else "numbers_full"])}</p>'
            "</section>",
            f'<section id="incidents"><h2>{_e(t["incidents"])}</h2>',
            _table([t["incident"], t["calls"]], report.incidents)
            if report.incidents
            else f'<p class="note">{_e(t["incidents_none"])}</p>',
            "</section>",
            f'<section id="time"><h2>{_e(t["time"])}</h2>',
            _table(
                [t["count"], t["minutes"]],
                [[t[k], _num(report.seconds[k] / 60, lang)] for k in ("prank", "ghost")],
            ),
            f'<p class="note">{_e(t["time_note"].format(n=report.calls_without_duration))}</p>'
            "</section>",
            f'<section id="flags"><h2>{_e(t["flags"])}</h2>',
            _table(
                ["", t["count"]],
                [[t[k], report.flags[k]] for k in ("caught", "cleared", "missed")],
            ),
            f'<p class="note">{_e(t["flags_note"])}</p></section>',
        ]
    stamp = (now or datetime.now(UTC)).isoformat(timespec="seconds")
    body.append(f'<p class="note">{_e(t["generated"].format(at=stamp))}</p>')
    return (
        f'<!DOCTYPE html><html lang="{lang}"><head><meta charset="utf-8">'
        f"<title>{_e(t['title'].format(week=report.week))}</title><style>{CSS}</style></head>"
        f"<body>{''.join(body)}</body></html>"
    )


def weekly_report_html(
    store: Store,
    *,
    week: str,
    tz: tzinfo | None,
    lang: str = "en",
    unmask: bool = False,
    now: datetime | None = None,
) -> str:
    """Build and render the report of ``week`` (raises InvalidParameterError on bad input)."""
    if lang not in LANGS:
        raise InvalidParameterError(f"lang must be one of {', '.join(LANGS)}; got {lang!r}")
    report = build_report(store, week=week, tz=tz, unmask=unmask, now=now)
    return render_html(report, lang=lang, now=now)

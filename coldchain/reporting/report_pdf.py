"""``report.pdf``: the export for a person who never saw coldchain (reportlab).

Page 1 says what the document is, the period, the selection, how to read it (in range, unknown,
MKT, degree-minutes), the audit trail's state and how to check the files; then, per unit, a
temperature chart with the product's band drawn, the unit's excursions and its daily table.

The chart is drawn from an ``Envelope``: per sensor, the lowest and highest reading of each of at
most ``buckets`` equal time slices of the period, filled as a band. A year of 1-minute readings
therefore becomes a few hundred points per sensor (constant memory, fast to draw), and nothing a
reading did is hidden: every minimum and maximum is in the envelope. Slices without any reading
are left empty and marked "no data" under the plot.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from xml.sax.saxutils import escape

from reportlab.graphics.shapes import Drawing, Line, Polygon, PolyLine, Rect, String
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4, landscape
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.platypus import (
    CondPageBreak,
    KeepTogether,
    PageBreak,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

from coldchain.core.times import format_time, from_millis

_SERIES_COLOURS = ["#1f5fa8", "#c05a00", "#2e7d32", "#6a1b9a", "#00838f", "#ad1457", "#5d4037", "#455a64"]
_TABLE_CHUNK = 40
_MIN_ROWS = 5
"""A table breaks across pages only with at least this many rows on each side (never a header and a stray row)."""
_PAGE = landscape(A4)
_MARGIN_X, _MARGIN_TOP, _MARGIN_BOTTOM = 12 * mm, 12 * mm, 14 * mm
_FRAME_PADDING = 6.0
"""What SimpleDocTemplate's frame keeps free on each side."""
_FRAME_HEIGHT = _PAGE[1] - _MARGIN_TOP - _MARGIN_BOTTOM - 2 * _FRAME_PADDING
_NBSP = "\u00a0"
_ISO_TIME = re.compile(r"(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2})(?:\.\d+)?Z")
_TIME_SAMPLE = "2026-12-31 23:59:59Z"
"""The widest time a cell shows: time columns are sized to hold it on one line."""
_QUANTITY_SAMPLE = "-88.8888\u00a0°C"
"""A wide reading with its unit: reading columns are at least this wide."""


def person_times(text: str, space: str = _NBSP) -> str:
    """``text`` with each RFC 3339 UTC time as ``2026-12-01 12:54:30Z``: whole seconds (the fraction is
    dropped; the CSVs keep it), date and time joined by ``space`` (no-break, so a time never wraps)."""
    return _ISO_TIME.sub(lambda m: f"{m[1]}{space}{m[2]}Z", text)


def _register_fonts() -> tuple[str, str]:
    """A Unicode TrueType font pair: DejaVu Sans where the system has it, else reportlab's own Vera."""
    if "cc-regular" in pdfmetrics.getRegisteredFontNames():
        return "cc-regular", "cc-bold"
    candidates = [
        (
            Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"),
            Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"),
        ),
        (Path("Vera.ttf"), Path("VeraBd.ttf")),  # shipped inside reportlab, found on its font path
    ]
    for regular, bold in candidates:
        try:
            pdfmetrics.registerFont(TTFont("cc-regular", str(regular)))
            pdfmetrics.registerFont(TTFont("cc-bold", str(bold)))
            return "cc-regular", "cc-bold"
        except Exception:  # noqa: BLE001 - reportlab raises TTFError or OSError; try the next font
            continue
    return "Helvetica", "Helvetica-Bold"


class Envelope:
    """Lowest and highest reading per sensor in each of ``buckets`` slices of [start_ms, end_ms)."""

    def __init__(self, start_ms: int, end_ms: int, buckets: int = 600) -> None:
        self.start = start_ms
        self.end = end_ms
        span = max(1, end_ms - start_ms)
        self.width = max(60_000, math.ceil(span / buckets / 60_000) * 60_000)  # whole minutes, at least one
        self.count = math.ceil(span / self.width)
        self.low: dict[str, list[float]] = {}
        self.high: dict[str, list[float]] = {}

    def add(self, sensor: str, t: int, value: float) -> None:
        """One reading (epoch ms inside the window)."""
        index = (t - self.start) // self.width
        if not 0 <= index < self.count:
            return
        low = self.low.get(sensor)
        if low is None:
            low = self.low[sensor] = [math.inf] * self.count
            self.high[sensor] = [-math.inf] * self.count
        high = self.high[sensor]
        if value < low[index]:
            low[index] = value
        if value > high[index]:
            high[index] = value


@dataclass(frozen=True, slots=True)
class Span:
    """A stretch to shade on a unit's chart (an excursion), epoch ms."""

    start_ms: int
    end_ms: int


@dataclass(slots=True)
class UnitSection:
    """What the report shows for one unit."""

    unit: str
    name: str
    site: str
    profile: str
    low: float
    high: float
    temperature_sensors: list[str]
    other_sensors: list[str]
    summary: list[tuple[str, str]]
    """(label, value) lines under the heading."""
    excursions: list[list[str]] = field(default_factory=list)
    excursion_spans: list[Span] = field(default_factory=list)
    daily: list[list[str]] = field(default_factory=list)
    bags: list[list[str]] = field(default_factory=list)
    reviews: list[list[str]] = field(default_factory=list)
    """Each day's daily review (``reviews.py``): date, status, who, when, note."""

    def value_units(self) -> dict[str, str]:
        """The unit of each sensor's readings: °C, or g for the other kind (shake, the only one there is)."""
        return {sensor: "g" for sensor in self.other_sensors} | {sensor: "°C" for sensor in self.temperature_sensors}


@dataclass(slots=True)
class ReportData:
    """Everything ``write_report`` needs, already worded."""

    title: str
    period: str
    exported_at: str
    version: str
    selection: str
    gap_after: str
    audit: str
    signed: bool
    start_ms: int
    end_ms: int
    envelope: Envelope
    units: list[UnitSection]
    overview: list[list[str]]
    """Rows of the first page's per-unit summary table (first row is the header)."""
    signer: str = ""
    """The fingerprint of the Ed25519 key that signs manifest.json."""
    notes: list[str] = field(default_factory=list)
    """Said in bold under the heading (a period without readings)."""


@dataclass(frozen=True, slots=True)
class Column:
    """A report table's column: its title, and either a share of the width or a time's fixed width."""

    title: str
    share: float = 0.0
    """Of the width left once the time columns have theirs."""
    time: bool = False
    """Holds times: sized to fit one on a line, and the header names the zone."""
    sensor: bool = False
    """Names the row's sensor, whose kind gives the unit of the row's ``quantity`` cells."""
    quantity: bool = False
    """Holds readings of the row's sensor: shown with its unit (°C or g)."""

    @property
    def header(self) -> str:
        return f"{self.title} (UTC)" if self.time else self.title


EXCURSION_COLUMNS = [
    Column("Kind", 0.11),
    Column("Sensor / bag", 0.08, sensor=True),
    Column("Start", time=True),
    Column("End", time=True),
    Column("Minutes", 0.06),
    Column("Peak", 0.08, quantity=True),
    Column("Beyond limit, min", 0.07),
    Column("Degree-min", 0.07),
    Column("MKT °C", 0.06),
    Column("Acknowledged", 0.30),
    Column("Notified", 0.18),
]
DAILY_COLUMNS = [
    Column("Date (local)", 0.09),
    Column("Sensor", 0.10, sensor=True),
    Column("Readings", 0.07),
    Column("Min", 0.08, quantity=True),
    Column("Max", 0.08, quantity=True),
    Column("Mean", 0.08, quantity=True),
    Column("In range\nmin", 0.09),
    Column("Out of range\nmin", 0.09),
    Column("Unknown\nmin", 0.09),
    Column("Gaps", 0.06),
    Column("Status", 0.20),
]
REVIEW_COLUMNS = [Column("Date", 0.12), Column("Review", 0.16), Column("Signed by", 0.25), Column("Signed", time=True)]
REVIEW_COLUMNS.append(Column("Note", 0.47))
BAG_COLUMNS = [
    Column("Bag", 0.12),
    Column("Lot", 0.13),
    Column("Diluted", time=True),
    Column("By", 0.13),
    Column("Deadline", time=True),
    Column("Infusion started", time=True),
    Column("Ended", time=True),
    Column("Within limit", 0.10),
    Column("Outcome", 0.52),
]


@dataclass(frozen=True, slots=True)
class _Styles:
    """The report's paragraph styles and fonts."""

    body: ParagraphStyle
    small: ParagraphStyle
    head: ParagraphStyle
    """Table headers."""
    h1: ParagraphStyle
    h2: ParagraphStyle
    h3: ParagraphStyle
    regular: str
    bold: str


def _styles() -> _Styles:
    regular, bold = _register_fonts()
    sheet = getSampleStyleSheet()
    body = ParagraphStyle("cc-body", parent=sheet["BodyText"], fontName=regular, fontSize=9, leading=12)
    small = ParagraphStyle("cc-small", parent=body, fontSize=7, leading=8.5)
    return _Styles(
        body=body,
        small=small,
        head=ParagraphStyle("cc-head", parent=small, fontName=bold),
        h1=ParagraphStyle("cc-h1", parent=sheet["Heading1"], fontName=bold, fontSize=17, leading=21),
        h2=ParagraphStyle("cc-h2", parent=sheet["Heading2"], fontName=bold, fontSize=13, leading=16),
        h3=ParagraphStyle("cc-h3", parent=sheet["Heading3"], fontName=bold, fontSize=10, leading=13),
        regular=regular,
        bold=bold,
    )


def write_report(path: Path, data: ReportData) -> None:
    """Write the PDF."""
    st = _styles()
    doc = SimpleDocTemplate(
        str(path),
        pagesize=_PAGE,
        leftMargin=_MARGIN_X,
        rightMargin=_MARGIN_X,
        topMargin=_MARGIN_TOP,
        bottomMargin=_MARGIN_BOTTOM,
        title=data.title,
        author=f"coldchain {data.version}",
        subject=person_times(data.period, " "),
    )
    width = _PAGE[0] - 2 * _MARGIN_X - 2 * _FRAME_PADDING

    def footer(canvas: object, document: object) -> None:
        canvas.saveState()  # type: ignore[attr-defined]
        canvas.setFont(st.regular, 7)  # type: ignore[attr-defined]
        text = f"{data.title} · {data.period} · exported {data.exported_at} · page {document.page}"  # type: ignore[attr-defined]
        canvas.drawString(12 * mm, 8 * mm, person_times(text, " "))  # type: ignore[attr-defined]
        canvas.restoreState()  # type: ignore[attr-defined]

    overview = [Column(title, 1.0) for title in data.overview[0]]
    story: list[object] = [
        Paragraph(escape(data.title), st.h1),
        _text(f"<b>Period:</b> {escape(data.period)}", st.body),
        _text(f"<b>Selection:</b> {escape(data.selection)}", st.body),
        _text(f"<b>Exported:</b> {escape(data.exported_at)} by coldchain {escape(data.version)}", st.body),
        _text(f"<b>Audit trail:</b> {escape(data.audit)}", st.body),
        _text(
            f"<b>Signed:</b> manifest.json with Ed25519, public key fingerprint {escape(data.signer)}"
            " (compare it with GET /api/keys/export)"
            if data.signer
            else "<b>Signed:</b> no",
            st.body,
        ),
        *[_text(f"<b>{escape(note)}</b>", st.body) for note in data.notes],
        Spacer(1, 4 * mm),
        *_tables(overview, data.overview[1:], width, st),
        Spacer(1, 4 * mm),
        Paragraph("How to read this report", st.h3),
        *[Paragraph(text, st.body) for text in _reading_guide(data)],
    ]
    for section in data.units:
        story.append(PageBreak())
        story.extend(_unit_story(section, data, width, st))
    doc.build(story, onFirstPage=footer, onLaterPages=footer)


def _text(markup: str, style: ParagraphStyle) -> Paragraph:
    """A paragraph of already escaped markup, its times worded for people."""
    return Paragraph(person_times(markup), style)


def _reading_guide(data: ReportData) -> list[str]:
    return [
        "Every time is in UTC; a daily summary's days are the local days of the unit's site (its time zone is "
        "named under the unit's heading; a day the clocks change has 23 or 25 hours and says so). <b>In range</b> "
        "means within the product's limits, the limits included (for natalizumab 2.0 to 8.0 °C). Each reading "
        "stands for the time until the sensor's next reading. A sensor-day marked <b>OUT OF CALIBRATION</b> "
        "is after the last day its calibration certificate covers.",
        f"<b>Unknown</b> time is time without data: whenever two consecutive readings of a sensor are more than "
        f"{escape(data.gap_after)} apart, the whole time between them is unknown. Unknown time is never counted "
        "as in range; it is listed per day and shown under each chart as <i>no data</i>.",
        "An <b>excursion</b> is an alert episode. <b>Beyond limit</b> is how long the readings stayed beyond the "
        "limit that raised it; <b>degree-minutes</b> add up how far beyond (°C) times how long (minutes). "
        "<b>MKT</b> is the mean kinetic temperature (USP &lt;1079.2&gt;, ΔH = 83.144 kJ/mol) of the sensor's "
        "readings in the 24 hours ending when the excursion ended (the whole excursion if it lasted longer).",
        "The chart shows, for each sensor, the band between the lowest and highest reading of each short time "
        "slice; the green band is the product's storage range, red shading marks excursions.",
        "This report belongs to a set of files listed with their SHA-256 in manifest.json"
        + (f" (signed with Ed25519, key fingerprint {escape(data.signer)})" if data.signer else "")
        + ". <font face='Courier'>coldchain export verify DIR</font> re-checks every file and names any that was "
        "altered (with <font face='Courier'>--public-key</font>, that the signature is the pharmacy's); "
        "<font face='Courier'>coldchain audit verify</font> checks the audit trail's hash chain.",
    ]


def _unit_story(section: UnitSection, data: ReportData, width: float, st: _Styles) -> list[object]:
    story: list[object] = [
        Paragraph(
            f"{escape(section.name)} <font size=10>({escape(section.unit)}, {escape(section.site)})</font>", st.h2
        ),
        _text(
            f"Product profile <b>{escape(section.profile)}</b>: in range {section.low:g} to {section.high:g} °C. "
            + " · ".join(f"{escape(label)}: <b>{escape(value)}</b>" for label, value in section.summary),
            st.body,
        ),
        Spacer(1, 2 * mm),
    ]
    if section.temperature_sensors:
        shown = chart_range(data.envelope, section.temperature_sensors, data.start_ms, data.end_ms)
        story.append(_chart(section, data, shown, width, 62 * mm, st.regular))
        if shown != (data.start_ms, data.end_ms):
            story.append(Paragraph(_narrowed(shown), st.small))
    else:
        story.append(Paragraph("This unit has no temperature sensor.", st.body))
    story.append(Spacer(1, 3 * mm))
    units = section.value_units()
    heading = Paragraph(f"Excursions ({len(section.excursions)})", st.h3)
    if section.excursions:
        story.extend(_headed(heading, _tables(EXCURSION_COLUMNS, section.excursions, width, st, units), width))
    else:
        story.append(KeepTogether([heading, Paragraph("No alert episode in this period.", st.body)]))
    if section.bags:
        heading = Paragraph(f"Diluted bags ({len(section.bags)})", st.h3)
        story.extend(_headed(heading, _tables(BAG_COLUMNS, section.bags, width, st), width))
    if section.reviews:
        heading = Paragraph("Daily review (min/max checked and signed)", st.h3)
        story.extend(_headed(heading, _tables(REVIEW_COLUMNS, section.reviews, width, st), width))
    heading = Paragraph("Daily summary", st.h3)
    story.extend(_headed(heading, _tables(DAILY_COLUMNS, section.daily, width, st, units), width))
    return story


def _headed(heading: Paragraph, tables: list[Table], width: float) -> list[object]:
    """``heading`` and its ``tables``, never the heading alone at the foot of a page: all on one page when
    they fit on one (a small table is not left to a page of its own), else the heading with the first
    table's first rows."""
    if not tables:
        return [heading]
    spaced = heading.getSpaceBefore() + heading.getSpaceAfter()
    head = heading.wrap(width, _FRAME_HEIGHT)[1] + spaced
    heights = [table.wrap(width, _FRAME_HEIGHT)[1] for table in tables]
    if head + sum(heights) <= _FRAME_HEIGHT:
        return [KeepTogether([heading, *tables])]
    first = tables[0]
    lead = sum(first._rowHeights[: _MIN_ROWS + 1])  # the header and the rows that may not be split from it
    return [CondPageBreak(head + lead), heading, *tables]


_PAD = 3.0
"""Left and right padding of a table cell."""


def _widths(columns: Sequence[Column], width: float, st: _Styles) -> list[float]:
    """Time columns just wide enough for a time on one line; the others share what is left by their shares,
    each at least as wide as the longest word of its header (so no header word breaks) and a reading
    column as wide as a reading with its unit."""
    time_width = pdfmetrics.stringWidth(_TIME_SAMPLE, st.small.fontName, st.small.fontSize) + 2 * _PAD + 1
    quantity = pdfmetrics.stringWidth(_QUANTITY_SAMPLE, st.small.fontName, st.small.fontSize)
    floors = [
        time_width if c.time else max(_longest_word(c.header, st.head), quantity if c.quantity else 0) + 2 * _PAD + 1
        for c in columns
    ]
    fixed = {i for i, c in enumerate(columns) if c.time}
    while True:
        left = width - sum(floors[i] for i in fixed)
        shares = sum(c.share for i, c in enumerate(columns) if i not in fixed) or 1.0
        widths = [floors[i] if i in fixed else left * c.share / shares for i, c in enumerate(columns)]
        narrow = {i for i, w in enumerate(widths) if i not in fixed and w < floors[i]}
        if not narrow:
            return widths
        fixed |= narrow


def _longest_word(text: str, style: ParagraphStyle) -> float:
    return max(float(pdfmetrics.stringWidth(word, style.fontName, style.fontSize)) for word in text.split())


def _cell(text: str, style: ParagraphStyle) -> Paragraph:
    return _text(escape(text).replace("\n", "<br/>"), style)


def _table(columns: Sequence[Column], rows: Sequence[Sequence[str]], widths: list[float], st: _Styles) -> Table:
    data = [[_cell(c.header, st.head) for c in columns]] + [[_cell(value, st.small) for value in row] for row in rows]
    table = Table(data, colWidths=widths, repeatRows=1)
    commands: list[tuple[object, ...]] = [
        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8eef5")),
        ("LINEBELOW", (0, 0), (-1, 0), 0.6, colors.HexColor("#7a8ca3")),
        ("GRID", (0, 0), (-1, -1), 0.25, colors.HexColor("#c8d0da")),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("TOPPADDING", (0, 0), (-1, -1), 1.5),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 1.5),
        ("LEFTPADDING", (0, 0), (-1, -1), _PAD),
        ("RIGHTPADDING", (0, 0), (-1, -1), _PAD),
    ]
    commands += _no_stray_rows(len(rows))
    for index, row in enumerate(rows, start=1):
        status = row[-1] if row else ""
        if status.startswith(("out of range", "infusion started after", "expired")) or "OUT OF CALIBRATION" in status:
            commands.append(("BACKGROUND", (0, index), (-1, index), colors.HexColor("#fde2e2")))
        elif status in ("no data", "incomplete data"):
            commands.append(("BACKGROUND", (0, index), (-1, index), colors.HexColor("#eeeeee")))
    table.setStyle(TableStyle(commands))
    return table


def _no_stray_rows(count: int) -> list[tuple[object, ...]]:
    """NOSPLIT commands for a table of a header and ``count`` rows: where it breaks across pages, the header
    goes with at least ``_MIN_ROWS`` rows and at least as many follow (a short table never breaks)."""
    return [
        ("NOSPLIT", (0, 0), (-1, min(_MIN_ROWS, count))),
        ("NOSPLIT", (0, max(0, count + 1 - _MIN_ROWS)), (-1, count)),
    ]


def _tables(
    columns: Sequence[Column],
    rows: Sequence[Sequence[str]],
    width: float,
    st: _Styles,
    units: Mapping[str, str] | None = None,
) -> list[object]:
    """Long tables as chunks of at most ``_TABLE_CHUNK`` rows, each with its header (reportlab splits one huge
    table slowly), of even sizes so that no chunk is a stray few rows."""
    widths = _widths(columns, width, st)
    rows = _with_units(columns, rows, units or {})
    count = math.ceil(len(rows) / _TABLE_CHUNK)
    size = math.ceil(len(rows) / count) if count else 0
    return [_table(columns, rows[i : i + size], widths, st) for i in range(0, len(rows), size or 1)]


def _with_units(columns: Sequence[Column], rows: Sequence[Sequence[str]], units: Mapping[str, str]) -> list[list[str]]:
    """``rows`` with each ``quantity`` value followed by the unit of the row's sensor (left alone: no sensor,
    or a sensor of no known unit, such as a bag's subject, and empty cells)."""
    key = next((i for i, c in enumerate(columns) if c.sensor), None)
    shown: list[list[str]] = []
    for row in rows:
        unit = units.get(row[key]) if key is not None else None
        cells = zip(columns, row, strict=True)
        shown.append([f"{v}{_NBSP}{unit}" if unit and c.quantity and v not in ("", "—") else v for c, v in cells])
    return shown


# -- the chart ---------------------------------------------------------------------------------------


def _nice_step(span: float, target: int) -> float:
    raw = span / max(1, target)
    magnitude = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1
    for factor in (1, 2, 2.5, 5, 10):
        if raw <= factor * magnitude:
            return factor * magnitude
    return 10 * magnitude


_TIME_STEPS = [
    timedelta(minutes=1),
    timedelta(minutes=2),
    timedelta(minutes=5),
    timedelta(minutes=10),
    timedelta(minutes=15),
    timedelta(minutes=30),
    timedelta(hours=1),
    timedelta(hours=3),
    timedelta(hours=6),
    timedelta(hours=12),
    timedelta(days=1),
    timedelta(days=2),
    timedelta(days=7),
    timedelta(days=14),
]


def _time_ticks(start_ms: int, end_ms: int, most: int = 9) -> list[tuple[int, str]]:
    """Tick positions (epoch ms) and labels: whole hours or days, or month starts for long periods."""
    span = end_ms - start_ms
    for step in _TIME_STEPS:
        step_ms = int(step.total_seconds() * 1000)
        if span / step_ms <= most:
            first = -(-start_ms // step_ms) * step_ms
            fmt = "%Y-%m-%d" if step >= timedelta(days=1) else "%H:%M" if _one_day(start_ms, end_ms) else "%m-%d %H:%M"
            return [(t, from_millis(t).strftime(fmt)) for t in range(first, end_ms + 1, step_ms)]
    months: list[tuple[int, str]] = []
    day = from_millis(start_ms)
    cursor = datetime(day.year, day.month, 1, tzinfo=UTC)
    every = max(1, math.ceil(span / (30.44 * 86_400_000) / most))
    while True:
        t = int(cursor.timestamp() * 1000)
        if t > end_ms:
            break
        if t >= start_ms and (cursor.month - 1) % every == 0:
            months.append((t, cursor.strftime("%Y-%m")))
        cursor = datetime(cursor.year + (cursor.month // 12), cursor.month % 12 + 1, 1, tzinfo=UTC)
    return months


_CHART_MARGIN_MS = 5 * 60_000


def chart_range(envelope: Envelope, sensors: Sequence[str], start_ms: int, end_ms: int) -> tuple[int, int]:
    """The chart's time axis, epoch ms: the slices with readings of ``sensors``, widened by a twentieth (at
    least 5 minutes) on each side and rounded out to whole minutes, within [start_ms, end_ms]; the whole
    period when there are no readings or they span most of it."""
    filled = [i for s in sensors for i, low in enumerate(envelope.low.get(s, ())) if low != math.inf]
    if not filled:
        return start_ms, end_ms
    first = envelope.start + min(filled) * envelope.width
    last = envelope.start + (max(filled) + 1) * envelope.width
    margin = max(_CHART_MARGIN_MS, (last - first) // 20)
    low = max(start_ms, (first - margin) // 60_000 * 60_000)
    high = min(end_ms, -(-(last + margin) // 60_000) * 60_000)
    if high - low >= 0.8 * (end_ms - start_ms):
        return start_ms, end_ms
    return low, high


def _one_day(start_ms: int, end_ms: int) -> bool:
    return from_millis(start_ms).date() == from_millis(end_ms - 1).date()


def _narrowed(shown: tuple[int, int]) -> str:
    low, high = (person_times(format_time(from_millis(t))) for t in shown)
    return (
        f"The chart shows {low} to {high}, where this unit's temperature readings are; the rest of the period has none."
    )


def _chart(
    section: UnitSection, data: ReportData, shown: tuple[int, int], width: float, height: float, font: str
) -> Drawing:
    envelope = data.envelope
    sensors = [s for s in section.temperature_sensors if s in envelope.low]
    left, bottom, right, top = 34.0, 30.0, 110.0, 8.0
    plot_w, plot_h = width - left - right, height - bottom - top
    drawing = Drawing(width, height)
    lows = [v for s in sensors for v in envelope.low[s] if v != math.inf]
    highs = [v for s in sensors for v in envelope.high[s] if v != -math.inf]
    y_min = min([section.low - 1.0, *lows]) if lows else section.low - 1.0
    y_max = max([section.high + 1.0, *highs]) if highs else section.high + 1.0
    y_step = _nice_step(y_max - y_min, 6)
    y_min, y_max = math.floor(y_min / y_step) * y_step, math.ceil(y_max / y_step) * y_step
    t0, t1 = shown

    def x(t: float) -> float:
        return left + (t - t0) / max(1, t1 - t0) * plot_w

    def y(v: float) -> float:
        return bottom + (v - y_min) / (y_max - y_min) * plot_h

    drawing.add(Rect(left, bottom, plot_w, plot_h, fillColor=colors.white, strokeColor=colors.HexColor("#7a8ca3")))
    band = Rect(left, y(section.low), plot_w, y(section.high) - y(section.low), strokeColor=None)
    band.fillColor = colors.HexColor("#dff0d8")
    drawing.add(band)
    for span in section.excursion_spans:
        a, b = max(span.start_ms, t0), min(span.end_ms, t1)
        if b > a:
            shade = Rect(x(a), bottom, max(0.8, x(b) - x(a)), plot_h, strokeColor=None)
            shade.fillColor = colors.Color(0.85, 0.1, 0.1, alpha=0.18)
            drawing.add(shade)
    for limit in (section.low, section.high):
        drawing.add(
            Line(
                left,
                y(limit),
                left + plot_w,
                y(limit),
                strokeColor=colors.HexColor("#2e7d32"),
                strokeDashArray=[3, 2],
                strokeWidth=0.7,
            )
        )
        drawing.add(
            String(
                left + plot_w + 3,
                y(limit) - 2.5,
                f"{limit:g} °C",
                fontName=font,
                fontSize=6.5,
                fillColor=colors.HexColor("#2e7d32"),
            )
        )
    value = y_min
    while value <= y_max + 1e-9:
        drawing.add(Line(left - 2, y(value), left, y(value), strokeWidth=0.5))
        drawing.add(String(left - 4, y(value) - 2.5, f"{value:g}", fontName=font, fontSize=6.5, textAnchor="end"))
        value += y_step
    drawing.add(String(8, bottom + plot_h / 2, "°C", fontName=font, fontSize=7))
    for t, label in _time_ticks(t0, t1):
        drawing.add(Line(x(t), bottom, x(t), bottom - 2, strokeWidth=0.5))
        drawing.add(String(x(t), bottom - 10, label, fontName=font, fontSize=6.5, textAnchor="middle"))
    zone = f"{from_millis(t0):%Y-%m-%d} (UTC)" if _one_day(t0, t1) else "(UTC)"
    drawing.add(String(left + plot_w + 3, bottom - 10, zone, fontName=font, fontSize=6.5))
    width_ms = envelope.width
    for number, sensor in enumerate(sensors):
        colour = colors.HexColor(_SERIES_COLOURS[number % len(_SERIES_COLOURS)])
        low, high = envelope.low[sensor], envelope.high[sensor]
        for first, last in _runs(low):
            upper = [(x(envelope.start + (i + 0.5) * width_ms), y(high[i])) for i in range(first, last + 1)]
            lower = [(x(envelope.start + (i + 0.5) * width_ms), y(low[i])) for i in range(last, first - 1, -1)]
            points = [c for point in upper + lower for c in point]
            if len(upper) == 1:
                drawing.add(Line(points[0], points[1], points[2], points[3], strokeColor=colour, strokeWidth=1.2))
                continue
            drawing.add(Polygon(points, fillColor=colour, fillOpacity=0.35, strokeColor=colour, strokeWidth=0.5))
            drawing.add(PolyLine([c for point in upper for c in point], strokeColor=colour, strokeWidth=0.4))
        legend_y = bottom + plot_h - 10 - number * 11
        drawing.add(Rect(left + plot_w + 3, legend_y, 8, 6, fillColor=colour, strokeColor=colour))
        drawing.add(String(left + plot_w + 14, legend_y + 0.5, sensor, fontName=font, fontSize=7))
    missing = [s for s in section.temperature_sensors if s not in envelope.low]
    for number, sensor in enumerate(missing, start=len(sensors)):
        drawing.add(
            String(
                left + plot_w + 3, bottom + plot_h - 10 - number * 11, f"{sensor}: no data", fontName=font, fontSize=7
            )
        )
    # slices in which a sensor has no reading at all: unknown, marked under the plot
    strip_y = bottom - 24
    drawing.add(
        String(left - 4, strip_y, "no data", fontName=font, fontSize=6, textAnchor="end", fillColor=colors.grey)
    )
    for sensor in section.temperature_sensors:
        slices = envelope.low.get(sensor)
        empty = [True] * envelope.count if slices is None else [v == math.inf for v in slices]
        for first, last in _runs([0.0 if e else math.inf for e in empty]):
            a = max(t0, envelope.start + first * width_ms)
            b = min(t1, envelope.start + (last + 1) * width_ms)
            if b <= a:
                continue
            mark = Rect(x(a), strip_y, max(0.8, x(b) - x(a)), 5, strokeColor=None)
            mark.fillColor = colors.HexColor("#9e9e9e")
            drawing.add(mark)
    return drawing


def _runs(low: list[float]) -> list[tuple[int, int]]:
    """(first, last) index of each run of filled slices (a slice is empty while its low is +inf)."""
    runs: list[tuple[int, int]] = []
    first: int | None = None
    for index, value in enumerate(low):
        if value != math.inf:
            if first is None:
                first = index
        elif first is not None:
            runs.append((first, index - 1))
            first = None
    if first is not None:
        runs.append((first, len(low) - 1))
    return runs

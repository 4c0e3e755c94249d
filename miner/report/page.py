"""Assemble the report page: one self-contained HTML file.

The page is ``page.html`` (a :class:`string.Template` beside this module) with
the funnel table, the charts and the kept examples filled in.  It must open
with no network: the plotly.js bundle is inlined once, in the head, and each
chart is a ``<div>`` plus a small script calling ``Plotly.newPlot`` on it (the
figure's JSON, which plotly escapes so no data can close the script).  The
filter box over the examples is a few lines of inline script too.  Without
episodes the page says so and carries no charts and no bundle.  The same
episodes give the same bytes: chart ids are fixed and nothing records the time.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from importlib import resources
from string import Template

from miner.record import Episode
from miner.report.charts import Chart, charts
from miner.report.examples import examples
from miner.stats import Funnel, Stats

CHART_HEIGHT = "420px"

# Hides the examples whose text does not contain what the box holds (case-insensitive).
_FILTER_SCRIPT = """<script>
(function () {
  var box = document.getElementById("filter");
  var shown = document.getElementById("shown");
  var rows = Array.prototype.slice.call(document.querySelectorAll("#examples .example"));
  function update() {
    var words = box.value.toLowerCase();
    var count = 0;
    rows.forEach(function (row) {
      var match = row.textContent.toLowerCase().indexOf(words) !== -1;
      row.hidden = !match;
      if (match) { count += 1; }
    });
    shown.textContent = count + " of " + rows.length + " shown";
  }
  box.addEventListener("input", update);
  update();
})();
</script>"""


def _template() -> Template:
    text = resources.files("miner.report").joinpath("page.html").read_text(encoding="utf-8")
    return Template(text)


def funnel_table(stats: Stats) -> str:
    """The funnel of each host (overall first) as an HTML table, a column each.

    A filter's row reads ``remaining (-removed)``, as ``miner stats`` prints it.
    """
    funnels = stats.funnels
    head = "".join(f"<th>{escape(f.label)}</th>" for f in funnels)
    rows = []

    def row(name: str, cells: Sequence[str]) -> None:
        tds = "".join(f"<td>{cell}</td>" for cell in cells)
        rows.append(f"<tr><th>{escape(name)}</th>{tds}</tr>")

    def counts(field: str) -> list[str]:
        return [str(getattr(f, field)) for f in funnels]

    if stats.dataset_note is None:
        row("snapshots", counts("snapshots"))
        row("usable states", counts("usable_states"))
    row("episodes", counts("episodes"))
    for i, name in enumerate(stats.filter_names):
        cells = [
            f'{f.filters[i].remaining} <span class="removed">(-{f.filters[i].removed})</span>'
            for f in funnels
        ]
        row(f"after {name}", cells)
    for field in ("kept", "verified", "described"):
        row(field, counts(field))
    note = ""
    if stats.dataset_note is not None:
        note = f'<p class="caption">Snapshots not counted: {escape(stats.dataset_note)}.</p>'
    return (
        f'{note}<table class="funnel"><thead><tr><th>step</th>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def chart_section(chart: Chart) -> str:
    div = chart.figure.to_html(
        full_html=False,
        include_plotlyjs=False,
        div_id=f"chart-{chart.slug}",
        default_height=CHART_HEIGHT,
        default_width="100%",
        config={"displaylogo": False, "responsive": True},
    )
    return (
        f'<section class="chart" id="{chart.slug}"><h2>{escape(chart.title)}</h2>'
        f'<p class="caption">{escape(chart.caption)}</p>{div}</section>'
    )


def plotly_bundle() -> str:
    from plotly.offline import get_plotlyjs

    return f'<script charset="utf-8">{get_plotlyjs()}</script>'


def render_page(episodes: Sequence[Episode], stats: Stats, title: str) -> str:
    """The whole page for ``episodes`` and their funnel ``stats``."""
    overall: Funnel = stats.overall
    drawn = charts(episodes, overall)
    subtitle = (
        f"{overall.episodes} episodes, {overall.kept} kept, {overall.described} described,"
        f" from {title}"
    )
    parts = ['<section id="funnel"><h2>Funnel</h2>', funnel_table(stats), "</section>"]
    if not episodes:
        parts.append(
            '<p class="empty" id="no-episodes">No episodes yet: the dataset has no'
            " green -> red -> green episode to show.</p>"
        )
    parts += [chart_section(chart) for chart in drawn]
    if episodes:
        parts += [
            '<section id="examples"><h2>Kept examples</h2>',
            '<input id="filter" type="search" placeholder="Filter by any text: error,'
            ' prompt, file, host...">',
            '<div id="shown"></div>',
            examples(episodes),
            "</section>",
            _FILTER_SCRIPT,
        ]
    return _template().substitute(
        title=escape(title),
        subtitle=escape(subtitle),
        plotlyjs=plotly_bundle() if drawn else "",
        body="\n".join(parts),
    )

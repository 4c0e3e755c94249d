"""``miner report``: the page of a real mined dataset, rendered in real headless Chromium.

Each browser test opens the written file from disk and checks what a person
would see: every chart drawn, no console error, no request leaving the
machine, one row per kept episode.  Screenshots go to test-artefacts/
($REDGREEN_TEST_ARTEFACTS moves them).  Without Chromium these tests fail,
saying how to install it: a report nobody rendered is not tested.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from miner.cli import cli
from miner.describe_stage import read_episodes
from miner.output import write_episodes
from miner.record import DOES_NOT_APPLY, NO_REPO, REPRODUCED
from miner.synthetic import SyntheticDataset
from tests.browser import Browser, BrowserError, chromium_binary, default_artefact_dir
from tests.test_stats import CALC, mine, set_verified

CHARTS = 6  # per day, time red, error kinds, funnel, fix size, verification
# A chart counts as drawn when plotly has built its SVG and at least one trace in it.
DRAWN_CHARTS = """
Array.from(document.querySelectorAll('.js-plotly-plot'))
  .filter(p => p.querySelector('.main-svg') && p.querySelector('g.trace')).length
"""
HOSTILE = "<script>window.__pwned = 1</script>"


def report(out: Path, *args: str) -> Path:
    result = CliRunner().invoke(cli, ["report", "--out", str(out), *args])
    assert result.exit_code == 0, result.output
    written = Path(result.output.strip().removeprefix("wrote "))
    assert written.is_file()
    return written


@pytest.fixture
def browser() -> Iterator[Browser]:
    try:
        chromium_binary()
    except BrowserError as exc:
        pytest.fail(str(exc))
    with Browser() as driven:
        yield driven


def screenshot(browser: Browser, name: str) -> Path:
    shot = browser.screenshot(default_artefact_dir() / name)
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 10_000
    return shot


@pytest.fixture
def mined(tmp_path: Path) -> tuple[Path, Path]:
    """The stats tests' dataset, mined, with verify's outcomes written in."""
    data, out = mine(tmp_path)
    set_verified(out, {"syntax error": REPRODUCED, "undefined name": NO_REPO})
    return data, out


def test_report_draws_every_chart_in_chromium(mined: tuple[Path, Path], browser: Browser) -> None:
    data, out = mined
    page_file = report(out, "--data-dir", str(data))
    assert page_file == out / "report.html"
    page = browser.load(page_file)
    assert browser.wait_for(f"({DRAWN_CHARTS}) >= {CHARTS}") is True
    assert browser.evaluate(DRAWN_CHARTS) == CHARTS
    assert browser.evaluate("document.querySelectorAll('section.chart').length") == CHARTS
    # the funnel table shows the dataset steps, overall first
    head = browser.evaluate(
        "Array.from(document.querySelectorAll('table.funnel thead th')).map(t => t.textContent)"
    )
    assert head == ["step", "overall", "desk", "laptop"]
    kept = sum(e.kept for e in read_episodes(out))
    assert browser.evaluate("document.querySelectorAll('#examples details.example').length") == kept
    assert browser.evaluate("document.getElementById('shown').textContent") == "3 of 3 shown"
    # a diff shows its added and removed lines as such
    assert browser.evaluate("document.querySelectorAll('pre.diff .add').length") >= kept
    assert browser.evaluate("document.querySelectorAll('pre.diff .del').length") >= kept
    screenshot(browser, "report.png")
    assert page.console_errors == []
    assert page.network_requests == []


def test_the_filter_box_narrows_the_examples(mined: tuple[Path, Path], browser: Browser) -> None:
    data, out = mined
    browser.load(report(out, "--data-dir", str(data)))
    shown = "Array.from(document.querySelectorAll('#examples .example')).filter(r => !r.hidden)"
    browser.evaluate(
        "(() => { const box = document.getElementById('filter'); box.value = 'NameError';"
        " box.dispatchEvent(new Event('input')); })()"
    )
    assert browser.evaluate(f"{shown}.length") == 1
    assert browser.evaluate("document.getElementById('shown').textContent") == "1 of 3 shown"
    assert "nmae" in browser.evaluate(f"{shown}[0].querySelector('pre.error').textContent")


def test_data_is_shown_as_text_never_run(tmp_path: Path, browser: Browser) -> None:
    ds = SyntheticDataset()
    w = ds.workspace()
    w.start({"page.py": b"TEMPLATE = ''\n"})
    w.snapshot("green")
    w.write("page.py", b"TEMPLATE = '" + HOSTILE.encode() + b"\n")
    w.snapshot("red", f"SyntaxError: unterminated string literal: {HOSTILE}\n")
    w.write("page.py", b"TEMPLATE = '" + HOSTILE.encode() + b"'\n")
    w.snapshot("green")
    _, out = mine(tmp_path, ds)
    [episode] = read_episodes(out)
    write_episodes(
        out, [replace(episode, prompt=f"Close the string {HOSTILE}", error_kind=HOSTILE)]
    )
    page_file = report(out)
    html = page_file.read_text(encoding="utf-8")
    assert HOSTILE not in html
    assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in html
    page = browser.load(page_file)
    assert browser.wait_for(f"({DRAWN_CHARTS}) >= {CHARTS}") is True
    assert browser.evaluate("typeof window.__pwned") == "undefined"
    text = "document.querySelector('#examples .example {}').textContent"
    assert HOSTILE in browser.evaluate(text.format("pre.error"))
    assert HOSTILE in browser.evaluate(text.format("pre.diff"))
    assert HOSTILE in browser.evaluate(text.format(".prompt"))
    assert (
        browser.evaluate("document.querySelector('pre.diff .add').textContent")
        == f"+TEMPLATE = '{HOSTILE}'"
    )
    assert page.console_errors == []
    assert page.network_requests == []


def test_empty_dataset_gives_a_page_that_says_so(tmp_path: Path, browser: Browser) -> None:
    ds = SyntheticDataset()
    w = ds.workspace()
    w.start({"calc.py": CALC})
    w.snapshot("green")
    data, out = mine(tmp_path, ds)
    page_file = report(out, "--data-dir", str(data))
    page = browser.load(page_file)
    assert "No episodes yet" in browser.evaluate(
        "document.getElementById('no-episodes').textContent"
    )
    assert browser.evaluate("document.querySelectorAll('.js-plotly-plot').length") == 0
    assert browser.evaluate("typeof window.Plotly") == "undefined"  # no bundle when nothing to draw
    screenshot(browser, "report-empty.png")
    assert page.console_errors == []
    assert page.network_requests == []


def test_page_is_self_contained_and_deterministic(mined: tuple[Path, Path]) -> None:
    data, out = mined
    first = report(out, "--data-dir", str(data)).read_bytes()
    html = first.decode("utf-8")
    # nothing to fetch: no script or stylesheet from elsewhere, no external link in the
    # markup (the plotly.js bundle's own code mentions URLs it never loads here)
    assert not re.search(r"<script[^>]*\ssrc=", html, re.I)
    assert not re.search(r"<link[^>]*\shref=", html, re.I)
    markup = re.sub(r"<script\b[^>]*>.*?</script>", "<script></script>", html, flags=re.S)
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", markup, re.I)
    assert not re.search(r"@import|url\(", markup, re.I)
    # the plotly.js bundle is there exactly once, and every chart calls it
    assert html.count("Plotly.newPlot(") == CHARTS
    assert len(re.findall(r"\* plotly\.js v\d", html)) == 1
    assert report(out, "--data-dir", str(data)).read_bytes() == first


def test_html_option_and_atomic_write(mined: tuple[Path, Path], tmp_path: Path) -> None:
    data, out = mined
    target = tmp_path / "elsewhere.html"
    assert report(out, "--data-dir", str(data), "--html", str(target)) == target
    assert not (out / "report.html").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp-")] == []
    result = CliRunner().invoke(
        cli, ["report", "--out", str(out), "--html", str(tmp_path / "no" / "dir" / "r.html")]
    )
    assert result.exit_code == 1
    assert result.output.startswith("Error: cannot write ")


def test_report_without_episodes_file_says_run_first(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["report", "--out", str(tmp_path / "empty")])
    assert result.exit_code == 1
    assert "run `miner run` first" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_verification_chart_counts_kept_outcomes(mined: tuple[Path, Path]) -> None:
    from miner.report.charts import verification

    _, out = mined
    set_verified(out, {"type error": DOES_NOT_APPLY})
    figure = verification(read_episodes(out)).figure
    [bar] = figure.data
    assert dict(zip(bar.x, bar.y, strict=True)) == {
        REPRODUCED: 1,
        DOES_NOT_APPLY: 1,
        NO_REPO: 1,
    }


def test_missing_chromium_fails_with_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import tests.browser

    monkeypatch.setattr(tests.browser, "CHROMIUM", "/nonexistent/chromium")
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(BrowserError, match=r"apt-get install chromium"):
        chromium_binary()


def test_miner_run_does_not_load_plotly() -> None:
    import subprocess
    import sys

    probe = "import sys, miner.cli; print('plotly' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


def test_the_browser_harness_sees_errors_and_requests(tmp_path: Path, browser: Browser) -> None:
    # the checks above can fail: a page that logs an error, throws and fetches is caught
    bad = tmp_path / "bad.html"
    bad.write_text(
        "<!DOCTYPE html><html><body><img src='http://127.0.0.1:9/pixel.png'>"
        "<script>console.error('drawn badly'); null.draw();</script></body></html>"
    )
    page = browser.load(bad)
    browser.wait_for("document.readyState === 'complete'")
    assert page.network_requests == ["http://127.0.0.1:9/pixel.png"]
    assert any("drawn badly" in error for error in page.console_errors)
    assert any("TypeError" in error for error in page.console_errors)

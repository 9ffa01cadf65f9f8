"""The report opens in a real browser: headless Chromium, offline, without errors.

Chromium runs with a fresh profile and no background networking; the page's
own Content-Security-Policy blocks any load, and a blocked load or a script
error would show up as a console message on Chromium's log, which must stay
empty. The DOM Chromium built must hold every chart, and its screenshot must
show a page, not a blank one.
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest
from equiguard.report import development
from equiguard.report.material import read_input
from equiguard.report.render import render_report
from helpers.report_story import story

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCORED = Path(__file__).resolve().parents[2] / "examples/readmission/scored-records.csv"
WIDTH, HEIGHT = 1280, 2000

# cluster/system-deps.sh (make deps) installs Chromium; a missing one fails
# these tests, never skips them.
pytestmark = [pytest.mark.slow]


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    profile = tmp_path / f"profile-{len(list(tmp_path.iterdir()))}"
    return subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--enable-logging=stderr",
            "--v=0",
            f"--window-size={WIDTH},{HEIGHT}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


def png_size_and_detail(path: Path) -> tuple[int, int, float]:
    """Width, height, and the share of non-zero bytes in the filtered image data.

    PNG rows are stored as differences from their neighbours, so an image of
    one colour filters to (almost) only zeros; a page of text and charts does not.
    """
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    chunks, offset = [], 8
    while offset < len(data):
        length, kind = struct.unpack(">I4s", data[offset : offset + 8])
        if kind == b"IDAT":
            chunks.append(data[offset + 8 : offset + 8 + length])
        offset += 12 + length
    raw = zlib.decompress(b"".join(chunks))
    return width, height, sum(1 for byte in raw if byte) / len(raw)


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    history = story()
    report = read_input(
        history.model,
        history.decisions,
        history.end,
        development.assess(history.model, str(SCORED)),
    )
    path = tmp_path_factory.mktemp("report") / "readmission-risk-equity-report.html"
    path.write_text(render_report(report).html, encoding="utf-8")
    return path


def test_chromium_renders_every_chart_without_a_console_message(page: Path, tmp_path: Path) -> None:
    run = chromium(tmp_path, "--dump-dom", page.as_uri())
    console = [line for line in run.stderr.splitlines() if ":CONSOLE" in line]
    assert console == []
    dom = run.stdout
    charts = re.findall(r'<svg [^>]*class="chart (time-chart|forest-chart)"', dom)
    assert charts.count("time-chart") == 6  # two per SLO
    assert charts.count("forest-chart") == 3  # one per SLO in the development assessment
    assert dom.count("<circle") > 40
    assert "Source attributes on fairness (ONC HTI-1)" in dom
    assert "evidence: status.slos of the evaluation at" in dom


def test_chromium_renders_the_utility_and_checklist_sections(page: Path, tmp_path: Path) -> None:
    dom = chromium(tmp_path, "--dump-dom", page.as_uri()).stdout
    # The decision curve: treat all, treat none, overall and each declared race group.
    curve = re.search(r'<svg [^>]*class="chart line-chart".*?</svg>', dom, re.S)
    assert curve is not None
    assert curve.group(0).count("<polyline") >= 4
    for label in ("treat all", "treat none", "model, overall", "race White"):
        assert f">{label}</text>" in curve.group(0)
    assert re.search(r'<h2 id="utility">Clinical utility and calibration by group</h2>', dom)
    assert "calibration slope</th>" in dom
    checklists = dom[dom.index('<h2 id="checklists">') :]
    assert "TRIPOD+AI" in checklists and "Article 72" in checklists
    assert checklists.count("status-filled") >= 3 and "status-partly" in checklists


def test_a_blocked_load_would_show_on_the_console(page: Path, tmp_path: Path) -> None:
    # The check above can fail: a page that reaches out is reported.
    reaching = tmp_path / "reaching.html"
    reaching.write_text(
        page.read_text().replace("</main>", '<img src="http://127.0.0.1:9/pixel.png"></main>')
    )
    run = chromium(tmp_path, "--dump-dom", reaching.as_uri())
    assert any(
        ":CONSOLE" in line and "Content Security Policy" in line for line in run.stderr.splitlines()
    )


def test_the_screenshot_shows_a_page_not_a_blank(page: Path, tmp_path: Path) -> None:
    shot = tmp_path / "report.png"
    chromium(tmp_path, f"--screenshot={shot}", page.as_uri())
    width, height, detail = png_size_and_detail(shot)
    assert (width, height) == (WIDTH, HEIGHT)
    blank = tmp_path / "blank.html"
    blank.write_text("<!DOCTYPE html><html><body></body></html>")
    blank_shot = tmp_path / "blank.png"
    chromium(tmp_path, f"--screenshot={blank_shot}", blank.as_uri())
    *_, blank_detail = png_size_and_detail(blank_shot)
    assert detail > 0.02 > blank_detail

"""The report's index page in a real headless browser (Chromium through Playwright).

Builds a small report (a toy track with claims, an outside agent's comparison, a track that
never ran, a skipped bad file), opens index.html from disk and checks that every image loads,
that nothing is logged to the console as an error, and that the navigation bar links every
track; a screenshot is written beside it. Skipped, with the reason, only when Playwright's
Python package or a Chromium binary is missing (Debian: `apt-get install chromium`).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from benchmarks import browser, report

pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")
if browser.find_chromium() is None:
    pytest.skip(
        "no Chromium binary found (apt-get install chromium, or set $TRACKS_CHROMIUM)",
        allow_module_level=True,
    )

from test_report import _use_toy_tracks, write_world  # noqa: E402


@pytest.fixture(scope="module")
def report_once(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("html")
    with pytest.MonkeyPatch.context() as mp:
        _use_toy_tracks(mp)
        root = write_world(tmp / "results", outside={"easy": (0.95, 0.92, 0.99)})
        bad = root / "toy/hard/random/seed_1/results.csv"
        bad.write_bytes(bad.read_bytes()[:50])
        report.build_report([root], tmp / "reports")
    return tmp / "reports"


@pytest.fixture
def built(report_once, tmp_path):
    """A copy of the report that a test may break."""
    return Path(shutil.copytree(report_once, tmp_path / "reports"))


def test_the_index_page_loads_every_image_without_console_errors(built):
    page = built / "index.html"
    shot = built / "screenshot.png"
    check = browser.check_page(page, screenshot=shot)
    expected = len(re.findall(r"<img ", page.read_text()))
    # 2 learning curves and the comparison's 2 figures (P(improvement), profile).
    assert check.images == expected == 4
    assert check.broken_images == [] and check.console_errors == [], check
    assert check.title == "Tracks report"
    assert check.nav_links == ["#overview", "#toy", "#skipped", "#metadata"]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000


def test_the_command_line_exits_1_naming_a_broken_image_and_2_without_a_page(built, capsys):
    (built / "toy" / "hard.png").unlink()
    assert browser.main([str(built / "index.html")]) == 1
    out = capsys.readouterr().out
    assert "4 images, 1 broken, 1 console errors" in out and "broken image: toy/hard.png" in out
    assert "console error: Failed to load resource: net::ERR_FILE_NOT_FOUND" in out
    assert browser.main([str(built / "nosuch.html")]) == 2
    assert "no page at" in capsys.readouterr().err
    with pytest.raises(SystemExit) as bad:
        browser.main([str(built / "index.html"), "--width", "0"])
    assert bad.value.code == 2 and "--width and --height must be positive, got 0x900" in (
        capsys.readouterr().err
    )

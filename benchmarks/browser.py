"""Open the report's index page in headless Chromium: check it, and take a screenshot.

    python -m benchmarks.browser reports/index.html --screenshot reports/screenshot.png

loads the page from disk (file://, so no server and no network), waits until it has loaded,
and reports every image that failed to load and every console error or uncaught page error;
it exits 1 if there is any. `tests/test_report_html.py` runs the same check on a report it
builds.

It drives the system's Chromium (Debian: `apt-get install chromium`) through Playwright's
Python package (`pip install playwright`; never `playwright install`, which downloads a browser
build of its own). `find_chromium()` looks for the binary on PATH under its usual names, or in
$TRACKS_CHROMIUM.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path
from typing import NamedTuple

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
ENV_VAR = "TRACKS_CHROMIUM"


class PageCheck(NamedTuple):
    images: int  # <img> elements on the page
    broken_images: list[str]  # src of every image that did not load (or has no pixels)
    console_errors: list[str]  # console messages of type "error", then uncaught page errors
    title: str
    nav_links: list[str]  # the href of every link in the <nav> bar

    @property
    def ok(self) -> bool:
        return not self.broken_images and not self.console_errors


def find_chromium() -> str | None:
    """The Chromium binary to drive: $TRACKS_CHROMIUM, else the first of CHROMIUM_NAMES found."""
    explicit = os.environ.get(ENV_VAR)
    if explicit:
        return explicit if Path(explicit).is_file() else None
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def check_page(
    page_path: str | Path,
    screenshot: str | Path | None = None,
    chromium: str | None = None,
    width: int = 1280,
    height: int = 900,
    full_page: bool = False,
) -> PageCheck:
    """Load `page_path` in headless Chromium and check its images and console.

    With `screenshot`, also write a PNG of the first screen (or the whole page with
    `full_page`). Raises FileNotFoundError when the page or the browser is missing.
    """
    from playwright.sync_api import sync_playwright

    page_path = Path(page_path).resolve()
    if not page_path.is_file():
        raise FileNotFoundError(f"no page at {page_path}")
    executable = chromium or find_chromium()
    if executable is None:
        raise FileNotFoundError(
            f"no Chromium found (looked for {', '.join(CHROMIUM_NAMES)} on PATH and ${ENV_VAR}); "
            "install it, e.g. apt-get install chromium"
        )
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=executable, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.on(
                "console",
                lambda m: errors.append(f"console {m.type}: {m.text}") if m.type == "error" else 0,
            )
            page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
            page.goto(page_path.as_uri(), wait_until="load")
            images = page.evaluate(
                "Array.from(document.images).map(i => [i.getAttribute('src'),"
                " i.complete && i.naturalWidth > 0])"
            )
            nav = page.evaluate(
                "Array.from(document.querySelectorAll('nav a')).map(a => a.getAttribute('href'))"
            )
            title = page.title()
            if screenshot is not None:
                Path(screenshot).parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(screenshot), full_page=full_page)
        finally:
            browser.close()
    broken = [src for src, loaded in images if not loaded]
    return PageCheck(len(images), broken, errors, title, nav)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.browser", description=__doc__)
    parser.add_argument("page", type=Path, help="the page, e.g. reports/index.html")
    parser.add_argument("--screenshot", type=Path, default=None, help="write a PNG here")
    parser.add_argument("--full-page", action="store_true", help="screenshot the whole page")
    parser.add_argument(
        "--width", type=int, default=1280, help="viewport width in CSS pixels (phone: 390)"
    )
    parser.add_argument("--height", type=int, default=900, help="viewport height in CSS pixels")
    args = parser.parse_args(argv)
    if args.width <= 0 or args.height <= 0:
        parser.error(f"--width and --height must be positive, got {args.width}x{args.height}")
    try:
        check = check_page(
            args.page,
            args.screenshot,
            width=args.width,
            height=args.height,
            full_page=args.full_page,
        )
    except FileNotFoundError as e:
        print(f"browser: error: {e}", file=sys.stderr)
        return 2
    print(
        f"{args.page}: {check.images} images, {len(check.broken_images)} broken, "
        f"{len(check.console_errors)} console errors"
    )
    for src in check.broken_images:
        print(f"  broken image: {src}")
    for error in check.console_errors:
        print(f"  {error}")
    if args.screenshot is not None:
        print(f"screenshot written to {args.screenshot}")
    return 0 if check.ok else 1


if __name__ == "__main__":
    sys.exit(main())

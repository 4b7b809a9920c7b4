"""Headless Chromium for tests, through Python Playwright and the system's browser (Debian's `chromium`
package; `playwright install` is never needed). Tests that use it skip cleanly where either is missing.

    from browser import open_page
    with open_page(url) as page:          # a playwright Page, already loaded
        ...
        page.console_errors, page.requested_urls
"""
from __future__ import annotations

import contextlib
import os
import shutil

import pytest

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]


def chromium_path():
    """The system Chromium's executable, or None."""
    env = os.environ.get("TUDUI_CHROMIUM")
    if env and os.path.isfile(env):
        return env
    for p in CHROMIUM_CANDIDATES:
        if os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    found = shutil.which("chromium")
    return found


def require_browser():
    """-> (playwright.sync_api module, chromium path); skips the test when either is missing."""
    try:
        from playwright import sync_api
    except ImportError:
        pytest.skip("playwright is not installed (pip install playwright)")
    exe = chromium_path()
    if exe is None:
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    return sync_api, exe


@contextlib.contextmanager
def browser(viewport=(1280, 900)):
    """A launched headless Chromium and one fresh page; the page collects console errors, uncaught page
    errors and every URL it requested (as page.console_errors, page.page_errors, page.requested_urls)."""
    sync_api, exe = require_browser()
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=exe, args=ARGS, headless=True, timeout=60_000)
        try:
            page = b.new_page(viewport={"width": viewport[0], "height": viewport[1]})
            page.console_errors, page.page_errors, page.requested_urls = [], [], []
            page.on("console", lambda m: m.type == "error" and page.console_errors.append(m.text))
            page.on("pageerror", lambda e: page.page_errors.append(str(e)))
            page.on("request", lambda r: page.requested_urls.append(r.url))
            page.set_default_timeout(30_000)
            yield page
        finally:
            b.close()


@contextlib.contextmanager
def open_page(url: str, viewport=(1280, 900), wait_until: str = "load"):
    """browser() with `url` already loaded."""
    with browser(viewport) as page:
        page.goto(url, wait_until=wait_until)
        yield page

"""Make docs/images/serve.png: the `tudui serve` page in headless Chromium with a prediction shown.

    python docs/images/serve_screenshot.py CKPT IMAGE [--out docs/images/serve.png]

Serves CKPT on 127.0.0.1 (a free port, in this process), opens the page at a phone-like width, uploads IMAGE
and saves a screenshot once the bars are shown. Needs the serve extra, Playwright's Python package and
Debian's chromium (/usr/bin/chromium, or --chromium PATH).
"""
from __future__ import annotations

import argparse
import socket
import threading
import time

import uvicorn
from playwright.sync_api import sync_playwright

from tudui.serve.app import create_app
from tudui.serve.model import open_model

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint")
    ap.add_argument("image")
    ap.add_argument("--out", default="docs/images/serve.png")
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    ap.add_argument("--width", type=int, default=480)
    ap.add_argument("--height", type=int, default=820)
    args = ap.parse_args()

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    url = "http://127.0.0.1:%d/" % sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(open_model(args.checkpoint)), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=args.chromium, args=ARGS, headless=True)
            page = browser.new_page(viewport={"width": args.width, "height": args.height})
            page.goto(url)
            page.wait_for_function("document.getElementById('model').textContent.includes('classes')")
            page.set_input_files("#file", args.image)
            page.wait_for_selector("#results li")
            page.wait_for_timeout(300)
            page.screenshot(path=args.out, full_page=True)
            browser.close()
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    print(args.out)


if __name__ == "__main__":
    main()

"""Headless Chromium as this machine runs it (Debian's /usr/bin/chromium; `playwright install` fails here)."""

import contextlib
import os

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def launch_chromium(playwright, args=CHROMIUM_ARGS):
    return playwright.chromium.launch(executable_path="/usr/bin/chromium", args=args)


@contextlib.contextmanager
def chromium(args=CHROMIUM_ARGS):
    """Headless Chromium for one test module. Playwright's sync API keeps an event loop in this thread;
    the ORM calls the tests make themselves are ordinary blocking calls, not async code."""
    from playwright.sync_api import sync_playwright

    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = launch_chromium(playwright, args)
            yield browser
            browser.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous

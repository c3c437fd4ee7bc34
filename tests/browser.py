"""Headless Chromium for the page tests, and the guard that keeps them on this machine: every request
bound elsewhere is aborted and recorded, and a test asserts none was made."""

from __future__ import annotations

import shutil
from urllib.parse import urlsplit

from playwright.async_api import Browser, Playwright, Route

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


async def launch(pw: Playwright) -> Browser:
    return await pw.chromium.launch(
        executable_path=CHROMIUM,
        args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
    )


class OffsiteGuard:
    """`await page.route("**/*", guard)`: requests to this machine (and data:/blob: URLs) go through;
    any other is aborted and kept in `offsite`."""

    def __init__(self) -> None:
        self.offsite: list[str] = []

    async def __call__(self, route: Route) -> None:
        url = route.request.url
        if urlsplit(url).hostname in LOCAL_HOSTS or url.startswith(("data:", "blob:")):
            await route.continue_()
        else:
            self.offsite.append(url)
            await route.abort("internetdisconnected")

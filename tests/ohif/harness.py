"""OHIF in headless Chromium against a DICOMweb origin: ours (gunicorn) or Orthanc's plugin (the peer),
for tests/ohif and bench/dicomweb.py.

Orthanc serves the same OHIF build from its own origin (its ServeFolders plugin), as we do, so neither
side pays for CORS or a proxy.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from ohif.build import OHIF_VERSION, STAMP, render_app_config, render_index_html
from tests.support.orthanc import PLUGIN_DIR, orthanc_server

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("OHIF_DIR", ROOT / "var" / "ohif")) / OHIF_VERSION
# The app's own routes that Orthanc must answer with index.html (ServeFolders serves files only).
APP_ROUTES = ("viewer",)


def ohif_installed() -> bool:
    return (BUILD / STAMP).is_file()


def orthanc_ohif_folder(workdir: Path) -> Path:
    """The build mounted at /ohif/ reading Orthanc's /dicom-web: links to its files, our index.html and
    app-config.js, and index.html copies at the app routes."""
    folder = Path(workdir) / "ohif-for-orthanc"
    folder.mkdir(parents=True, exist_ok=True)
    for entry in BUILD.iterdir():
        if entry.name not in ("index.html", "app-config.js") and not entry.name.startswith("."):
            target = folder / entry.name
            if not target.exists():
                target.symlink_to(entry)
    page = render_index_html(BUILD, "/ohif/")
    (folder / "index.html").write_bytes(page)
    for route in APP_ROUTES:  # files without an extension, served as text/html (see below)
        (folder / route).write_bytes(page)
    (folder / "app-config.js").write_text(render_app_config("/ohif/", "/dicom-web"))
    return folder


@contextlib.contextmanager
def orthanc_with_ohif(workdir: Path):
    """Orthanc with DICOMweb at /dicom-web and OHIF at /ohif/ (no HTTP authentication: loopback only)."""
    folder = orthanc_ohif_folder(workdir)
    extra = {
        "Plugins": [str(PLUGIN_DIR / "libOrthancDicomWeb.so"), str(PLUGIN_DIR / "libServeFolders.so")],
        "AuthenticationEnabled": False,
        "ServeFolders": {
            "Folders": {"/ohif": str(folder)},
            "Extensions": {
                "": "text/html",
                ".wasm": "application/wasm",
                ".mjs": "text/javascript",
                ".woff2": "font/woff2",
            },
            "AllowCache": True,
        },
    }
    with orthanc_server(Path(workdir) / "orthanc", extra_config=extra) as pacs:
        yield pacs


# The viewport canvas: OHIF (cornerstone3D) draws into a WebGL canvas inside .cornerstone-viewport-element.
CANVAS = ".cornerstone-viewport-element canvas"

CANVAS_STATS_JS = """
() => {
  const c = [...document.querySelectorAll('.cornerstone-viewport-element canvas')]
    .filter(c => c.width > 0 && c.height > 0)[0];
  if (!c) return null;
  const probe = document.createElement('canvas');
  probe.width = c.width; probe.height = c.height;
  const ctx = probe.getContext('2d');
  ctx.drawImage(c, 0, 0);
  const data = ctx.getImageData(0, 0, c.width, c.height).data;
  let lit = 0, sum = 0;
  for (let i = 0; i < data.length; i += 4) {
    const v = data[i] + data[i + 1] + data[i + 2];
    if (v > 30) lit++;
    sum += v;
  }
  return {width: c.width, height: c.height, lit: lit, sum: sum, at: performance.now()};
}
"""


@dataclass
class Traffic:
    """What the page asked for and what it got."""

    responses: list[tuple[str, int, str]] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)

    def attach(self, page) -> None:
        page.on("response", lambda r: self.responses.append((r.request.method, r.status, r.url)))
        page.on("requestfailed", lambda r: self.failed.append(r.url))
        page.on("console", lambda m: self.console.append(f"{m.type}: {m.text}"))

    def errors(self) -> list[tuple[str, int, str]]:
        return [r for r in self.responses if r[1] >= 400]

    def matching(self, text: str) -> list[tuple[str, int, str]]:
        return [r for r in self.responses if text in r[2]]


def canvas_stats(page) -> dict | None:
    return page.evaluate(CANVAS_STATS_JS)


def wait_for_pixels(page, timeout: float = 60.0) -> dict:
    """Wait until the first viewport's canvas has lit pixels; return its stats."""
    deadline = time.monotonic() + timeout
    stats = None
    while time.monotonic() < deadline:
        stats = canvas_stats(page)
        if stats and stats["lit"] > 0:
            return stats
        page.wait_for_timeout(100)
    raise AssertionError(f"no image drawn in {timeout:.0f} s (canvas: {stats})")

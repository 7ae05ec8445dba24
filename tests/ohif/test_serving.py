"""/ohif/: the installed build's files, our index.html and app config, and what happens when it is off or
not installed. No browser here (tests/ohif/test_browser.py has one)."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import pytest

from ohif import build
from tests.ohif.harness import BUILD, ohif_installed

ROOT = Path(__file__).resolve().parents[2]
installed = pytest.mark.skipif(not ohif_installed(), reason="OHIF is not installed (scripts/ohif.sh)")


@pytest.fixture(autouse=True)
def _fresh_index():
    build._index_html.cache_clear()
    yield
    build._index_html.cache_clear()


def test_the_install_script_pins_the_version_the_app_serves():
    script = (ROOT / "scripts" / "ohif.sh").read_text()
    assert f"OHIF_VERSION={build.OHIF_VERSION}\n" in script
    assert re.search(r"^OHIF_SHA512=\S{88}$", script, re.M)


@installed
def test_index_is_mounted_at_ohif_and_moves_a_fragment_token_out_of_sight(client):
    response = client.get("/ohif/")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'window.PUBLIC_URL="/ohif/"' in html
    assert 'src="/ohif/app-config.js"' in html and 'href="/ohif/assets/favicon.ico"' in html
    assert not re.search(r'(?:src|href)="/(?!ohif/)', html)
    assert "x.open('POST', prefix + 'session', false);" in html and 'prefix = "/ohif/"' in html
    assert response["Referrer-Policy"] == "no-referrer"
    # The app's own routes get the same page.
    viewer = client.get("/ohif/viewer", {"StudyInstanceUIDs": "1.2.3"})
    assert viewer.status_code == 200 and viewer.content == response.content
    assert client.get("/ohif/index.html").content == response.content


def test_app_config_reads_our_dicomweb_root_on_the_page_origin(client, settings):
    settings.DICOMWEB_PATH = "dw"
    response = client.get("/ohif/app-config.js")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/javascript")
    body = response.content.decode()
    assert '"routerBasename": "/ohif"' in body
    assert '"extensions": []' in body and '"modes": []' in body
    assert 'var root = window.location.origin + "/dw";' in body
    assert '"@ohif/extension-default.dataSourcesModule.dicomweb"' in body


@installed
def test_build_files_are_served_with_their_types_and_hashed_ones_cached_for_good(client):
    wasm = next(BUILD.glob("*.wasm"))
    response = client.get(f"/ohif/{wasm.name}")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/wasm"
    assert response["Cache-Control"] == "public, max-age=31536000, immutable"
    assert b"".join(response.streaming_content) == wasm.read_bytes()
    bundle = next(BUILD.glob("app.bundle.*.js"))
    response = client.get(f"/ohif/{bundle.name}")
    assert response["Content-Type"].startswith("text/javascript")
    # Our edit: webpack's public path follows the mount point.
    assert b"window.PUBLIC_URL) || self.location" in b"".join(response.streaming_content)
    assert client.get("/ohif/assets/favicon.ico")["Cache-Control"] == "no-cache"


@installed
def test_browsers_that_accept_gzip_get_the_gzip_copy(client):
    bundle = next(BUILD.glob("app.bundle.*.js"))
    response = client.get(f"/ohif/{bundle.name}", headers={"Accept-Encoding": "gzip, deflate, br"})
    assert response["Content-Encoding"] == "gzip" and response["Vary"] == "Accept-Encoding"
    assert response["Content-Type"].startswith("text/javascript")
    packed = b"".join(response.streaming_content)
    assert len(packed) < bundle.stat().st_size / 3
    assert gzip.decompress(packed) == bundle.read_bytes()
    plain = client.get(f"/ohif/{bundle.name}")
    assert "Content-Encoding" not in plain


@installed
@pytest.mark.parametrize(
    "path",
    [
        "/ohif/nope.js",
        "/ohif/..%2F..%2Fpyproject.toml",
        "/ohif/../manage.py",
        f"/ohif/{build.STAMP}",
        "/ohif/app.bundle.css.gz",
    ],
)
def test_files_outside_the_build_or_not_in_it_are_404(client, path):
    response = client.get(path)
    assert response.status_code == 404
    assert not response.content.startswith(b"<!doctype html>")


def test_not_installed_is_503_saying_how(client, settings, tmp_path):
    settings.OHIF_DIR = tmp_path
    for path in ("/ohif/", "/ohif/viewer", "/ohif/app.bundle.css"):
        response = client.get(path)
        assert response.status_code == 503
        assert "scripts/ohif.sh" in response.json()["detail"]


def test_disabled_is_404(client, settings):
    settings.OHIF_ENABLED = False
    for path in ("/ohif/", "/ohif/viewer", "/ohif/app-config.js"):
        assert client.get(path).status_code == 404


def test_only_safe_methods(client):
    assert client.post("/ohif/").status_code == 405

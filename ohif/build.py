"""The installed OHIF build (scripts/ohif.sh), and the index.html and app-config.js we serve in its place.

The @ohif/app build expects to sit at the root of a site: its index.html names every file from "/" and
sets ``window.PUBLIC_URL = "/"``. scripts/ohif.sh makes webpack's public path follow ``window.PUBLIC_URL``;
the index.html served here sets it to the mount point (``/ohif/``) and names its files from there, so one
origin serves the app and the DICOMweb root it reads (no CORS).
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

from django.conf import settings

# Keep in step with scripts/ohif.sh (tests/ohif/test_install.py checks).
OHIF_VERSION = "3.13.2"
STAMP = ".dicomsvc-installed-2"

# Links for a doctor: /ohif/#token=<GET /token's token> (or /ohif/viewer?...#token=). The fragment never
# leaves the browser, so the token never reaches a server or proxy log. Before the app starts, this
# script takes it out of the address and exchanges it at /<OHIF_PATH>/session (synchronously: OHIF's
# router must find the result when it starts) for a viewer session token of the same grant
# (VIEWER_SESSION_TTL; a single-use token is spent here, once, as on /viewer/). It puts the study and
# the session token into the query, where OHIF 3 reads them (Mode route: ``?token=`` becomes
# ``Authorization: Bearer <token>`` on every DICOMweb request, and leaves the address at once). A
# patient-role token goes to the built-in viewer, unspent; a token that grants nothing, to a page
# saying why.
LINK_SCRIPT = """<script>(function () {
  var m = /[#&]token=([^&]*)/.exec(location.hash);
  if (!m) return;
  var token = decodeURIComponent(m[1]), prefix = PREFIX;
  history.replaceState(null, '', location.pathname + location.search);
  var x = new XMLHttpRequest(), body = {};
  x.open('POST', prefix + 'session', false);
  x.setRequestHeader('Content-Type', 'application/json');
  try { x.send(JSON.stringify({token: token})); body = JSON.parse(x.responseText); } catch (e) {}
  if (x.status === 200 && body.session) {
    var q = new URLSearchParams(location.search);
    q.set('StudyInstanceUIDs', body.studyUID);
    q.set('token', body.session);
    history.replaceState(null, '', prefix + 'viewer?' + q.toString());
  } else if (body.viewer) {
    location.replace(body.viewer + '#token=' + encodeURIComponent(token));
  } else {
    var reason = (body.errors && body.errors.token && body.errors.token[0]) || String(x.status);
    location.replace(prefix + 'link?reason=' + encodeURIComponent(reason));
  }
})();</script>"""


class NotInstalled(Exception):
    pass


def build_dir() -> Path:
    """The installed build, or NotInstalled."""
    path = settings.OHIF_DIR / OHIF_VERSION
    if not (path / STAMP).is_file():
        raise NotInstalled(
            f"OHIF {OHIF_VERSION} is not installed in {settings.OHIF_DIR}: run scripts/ohif.sh."
        )
    return path


def mount() -> str:
    return f"/{settings.OHIF_PATH}/"


@functools.cache
def _index_html(path: Path, prefix: str) -> bytes:
    text = (path / "index.html").read_text(encoding="utf-8")
    text, publics = re.subn(r'window\.PUBLIC_URL="/"', f"window.PUBLIC_URL={json.dumps(prefix)}", text)
    text, links = re.subn(r'(\s(?:href|src))="/(?!/)', rf'\1="{prefix}', text)
    if not publics or not links:
        raise NotInstalled(f"{path / 'index.html'} is not the index.html of an OHIF build.")
    text = text.replace("<head>", "<head>" + LINK_SCRIPT.replace("PREFIX", json.dumps(prefix)), 1)
    return text.encode("utf-8")


def index_html() -> bytes:
    """The build's index.html, mounted at /<OHIF_PATH>/."""
    return _index_html(build_dir(), mount())


def render_index_html(path: Path, prefix: str) -> bytes:
    """The index.html of the build in ``path`` mounted at ``prefix`` (for a server other than ours too)."""
    return _index_html(path, prefix)


def app_config_js() -> str:
    """``window.config`` for our app: one DICOMweb data source, ours, on the page's own origin."""
    return render_app_config(mount(), "/" + settings.DICOMWEB_PATH)


def render_app_config(prefix: str, dicomweb_path: str) -> str:
    """``window.config`` for the app mounted at ``prefix`` reading DICOMweb at ``dicomweb_path`` on the
    page's origin."""
    source = {
        "namespace": "@ohif/extension-default.dataSourcesModule.dicomweb",
        "sourceName": "dicomsvc",
        "configuration": {
            "friendlyName": "dicomsvc",
            "name": "dicomsvc",
            # Set below from the page's origin (behind a proxy too).
            "wadoUriRoot": "",
            "qidoRoot": "",
            "wadoRoot": "",
            # QIDO-RS includefield and fuzzymatching (PS3.18 8.3.4), WADO-RS frames and metadata
            # with BulkDataURI (PS3.18 10.4), rendered thumbnails (PS3.18 10.4.1.1.3).
            "qidoSupportsIncludeField": True,
            "supportsFuzzyMatching": True,
            "supportsWildcard": True,
            "imageRendering": "wadors",
            "thumbnailRendering": "wadors",
            "enableStudyLazyLoad": True,
            "supportsReject": False,
            "dicomUploadEnabled": False,
            "bulkDataURI": {"enabled": True},
            "omitQuotationForMultipartRequest": True,
        },
    }
    config = {
        "name": "dicomsvc",
        "routerBasename": prefix.rstrip("/"),
        # The defaults are compiled in; the keys must be present.
        "extensions": [],
        "modes": [],
        "customizationService": {},
        "showStudyList": True,
        "maxNumberOfWebWorkers": 3,
        "showWarningMessageForCrossOrigin": False,
        "showCPUFallbackMessage": True,
        "showLoadingIndicator": True,
        "strictZSpacingForVolumeViewport": True,
        "defaultDataSourceName": "dicomsvc",
        "dataSources": [source],
    }
    root = dicomweb_path
    return (
        "// Generated by dicomsvc (ohif/build.py): OHIF reads DICOMweb from this origin.\n"
        f"window.config = {json.dumps(config, indent=2)};\n"
        "(function () {\n"
        f"  var root = window.location.origin + {json.dumps(root)};\n"
        "  var c = window.config.dataSources[0].configuration;\n"
        "  c.qidoRoot = c.wadoRoot = c.wadoUriRoot = root;\n"
        "})();\n"
    )

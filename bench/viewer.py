#!/usr/bin/env python
"""Viewer benchmark: the built-in viewer in headless Chromium against gunicorn, beside Orthanc's renderer.

    .venv/bin/python bench/viewer.py [--images 100] [--cold-runs 5] [--loads 5]

Uploads generated CT series (256x256, 12-bit, `--images` slices each) through exams ingest into a
throwaway Postgres database, serves the app with gunicorn (2 workers x 4 threads, the project's
gunicorn configuration, so each worker has warmed its rendering stack before it serves), and measures
in headless Chromium (1280x800):
- time to first image (navigation start -> first image drawn on the canvas), as medians with their
  spread: cold = a series nothing of which was rendered yet (render cache empty), one fresh series per
  run (`--cold-runs`); warm = the same series loaded again (`--loads`). Each gunicorn thread has
  served a viewer session before, and the browser has started;
- scrolling: images/s stepping through the series with the arrow key, one image drawn per animation
  frame at most (what a person sees), right after the first image (prefetch still running) and again
  once the series is in the page;
- the peer, measured in the same run: 100 rendered frames fetched one after another and decoded in the
  browser, from our rendering endpoint (forced cache miss) and from Orthanc's `/instances/{id}/rendered`
  (same files, same browser), as a ratio.
Targets: first image <= 500 ms, scrolling >= 30 images/s. Bounded: a few minutes at most.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

import requests

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.common import gunicorn, manage, throwaway_database  # noqa: E402
from tests.viewer.browser import launch_chromium  # noqa: E402

# Records when the first image is drawn, relative to navigation start.
FIRST_SHOWN = """
document.addEventListener('viewer:shown', () => {
  if (window.__firstShown === undefined) { window.__firstShown = performance.now(); }
});
"""

# Where a load's time went, from the browser's Resource Timing: the page, its script, the session
# exchange and the first image request (start -> response end, ms from navigation start).
BREAKDOWN = """
() => {
  const nav = performance.getEntriesByType('navigation')[0];
  const resources = performance.getEntriesByType('resource');
  const find = (part) => resources.find(r => r.name.includes(part));
  const span = (r) => r ? [Math.round(r.startTime), Math.round(r.responseEnd)] : null;
  return {
    page: [0, Math.round(nav.responseEnd)],
    script: span(find('viewer.js')),
    session: span(find('/viewer/api/session')),
    image: span(find('/rendered')),
    shown: Math.round(window.__firstShown),
  };
}
"""

# Steps through the series with ArrowDown (or ArrowUp), waiting for each image to be drawn and for the
# next animation frame, so at most one image per displayed frame counts.
SCROLL = """
async ([steps, key]) => {
  const shown = () => new Promise(resolve =>
    document.addEventListener('viewer:shown', resolve, {once: true}));
  const started = performance.now();
  for (let i = 0; i < steps; i++) {
    const drawn = shown();
    document.dispatchEvent(new KeyboardEvent('keydown', {key, bubbles: true}));
    await drawn;
    await new Promise(requestAnimationFrame);
  }
  return (performance.now() - started) / 1000;
}
"""

# Fetches and decodes rendered frames one after another (no prefetch, no parallelism).
SEQUENTIAL = """
async ([urls, headers]) => {
  const started = performance.now();
  for (const url of urls) {
    const response = await fetch(url, {headers, cache: 'no-store'});
    if (!response.ok) { throw new Error('HTTP ' + response.status + ' for ' + url); }
    const bitmap = await createImageBitmap(await response.blob());
    bitmap.close();
  }
  return (performance.now() - started) / 1000;
}
"""


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=100, help="slices in the series (default 100)")
    parser.add_argument(
        "--cold-runs", type=int, default=5, help="series loaded with an empty render cache (default 5)"
    )
    parser.add_argument("--loads", type=int, default=5, help="warm page loads of one series (default 5)")
    args = parser.parse_args()

    with (
        tempfile.TemporaryDirectory(prefix="viewer-bench-") as tmp,
        throwaway_database("dicomsvc_bench_viewer") as url,
    ):
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "DICOMSVC_VAR_DIR": str(Path(tmp) / "var"),
            "LOG_LEVEL": "WARNING",
            "DEBUG": "false",
            "AUDIT_ENABLED": "true",
        }
        env.pop("DJANGO_SETTINGS_MODULE", None)
        os.environ.update({k: env[k] for k in ("DATABASE_URL", "DICOMSVC_VAR_DIR", "LOG_LEVEL")})
        os.environ["DJANGO_SETTINGS_MODULE"] = "dicomsvc.settings"
        manage(env, "migrate", "--noinput")
        manage(env, "collectstatic", "--noinput", "-v", "0")

        import django

        django.setup()
        from pydicom.uid import generate_uid

        from tests.support.orthanc import orthanc_server
        from tests.viewer.dicomgen import PATIENT_ID, ct_slice, dicom_bytes, ingest
        from viewer.tokens import grant_encode, new_grant

        def token_for(study: str) -> str:
            return grant_encode(new_grant(study_uid=study, patient_id=PATIENT_ID, role="diagnostic"))

        # One series per cold run: each is loaded once with nothing of it rendered yet.
        series = []
        for _ in range(max(1, args.cold_runs)):
            study_uid, series_uid = generate_uid(), generate_uid()
            slices = [
                ct_slice(i, args.images, study_uid=study_uid, series_uid=series_uid, patient_id=PATIENT_ID)
                for i in range(args.images)
            ]
            for ds in slices:
                ingest(ds)
            series.append((study_uid, series_uid, slices))
        study_uid, series_uid, slices = series[0]
        instance_uids = [ds.SOPInstanceUID for ds in slices]

        with orthanc_server(Path(tmp) / "orthanc") as pacs, gunicorn(env) as port:
            orthanc_ids = [
                requests.post(
                    f"{pacs.url}/instances", data=dicom_bytes(ds), auth=pacs.auth, timeout=30
                ).json()["ID"]
                for ds in slices
            ]
            base = f"http://127.0.0.1:{port}"
            # Let every gunicorn worker thread load the app and open its database connection once (a
            # viewer session each, no image): the figures are about the viewer, not start-up.
            for _ in range(16):
                requests.get(f"{base}/viewer/", timeout=30).raise_for_status()
                requests.post(
                    f"{base}/viewer/api/session", json={"token": token_for(study_uid)}, timeout=30
                ).raise_for_status()

            results = run_browser(
                base,
                token_for,
                args,
                pacs,
                orthanc_ids,
                [(study, series_) for study, series_, _ in series],
                instance_uids,
            )
    report(results, args)


def run_browser(base, token_for, args, pacs, orthanc_ids, series, instance_uids) -> dict:
    from playwright.sync_api import sync_playwright

    results: dict = {"cold": [], "warm": [], "breakdown": [], "scroll_cold": None, "scroll_prefetching": None}
    steps = args.images - 1
    study_uid, series_uid = series[0]
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        results["chromium"] = browser.version
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        context.add_init_script(FIRST_SHOWN)
        # The browser's own start-up (its first page and renderer process) is not the viewer's.
        warm = context.new_page()
        warm.goto(f"{base}/healthz")
        warm.close()

        def load(study: str, into: list):
            page = context.new_page()
            page.goto(f"{base}/viewer/#token={token_for(study)}")
            page.wait_for_function("() => window.__firstShown !== undefined", timeout=30000)
            into.append(page.evaluate("window.__firstShown"))
            results["breakdown"].append((into is results["cold"], page.evaluate(BREAKDOWN)))
            return page

        def close(page):
            # Let the page finish fetching ahead, so the next load does not queue behind it on the server.
            page.wait_for_load_state("networkidle")
            page.close()

        # Cold: each series once, nothing of it rendered yet. The first one is scrolled at once, while
        # its prefetch is running.
        for index, (study, _) in enumerate(series):
            page = load(study, results["cold"])
            if index == 0:
                results["scroll_cold"] = steps / page.evaluate(SCROLL, [steps, "ArrowDown"])
            close(page)
        # Warm: the first series again (server cache warm, page cache empty).
        for index in range(max(1, args.loads)):
            page = load(study_uid, results["warm"])
            if index < args.loads - 1:
                close(page)
        # Last load: scroll at once, then back through the series now in the page.
        results["scroll_prefetching"] = steps / page.evaluate(SCROLL, [steps, "ArrowDown"])
        results["scroll_cached"] = steps / page.evaluate(SCROLL, [steps, "ArrowUp"])

        # Peer comparison: sequential fetch + decode of every rendered frame, ours (cache miss) vs Orthanc.
        session = page.request.post(
            f"{base}/viewer/api/session", data={"token": token_for(study_uid)}
        ).json()["session"]
        ours = [
            f"{base}/viewer/api/studies/{study_uid}/series/{series_uid}/instances/{uid}/rendered"
            "?windowCenter=41&windowWidth=401&size=256"
            for uid in instance_uids
        ]
        results["ours_sequential"] = len(ours) / page.evaluate(
            SEQUENTIAL, [ours, {"Authorization": f"Bearer {session}"}]
        )
        page.close()

        peer_context = browser.new_context(
            http_credentials={"username": pacs.username, "password": pacs.password}
        )
        peer = peer_context.new_page()
        peer.goto(f"{pacs.url}/system")
        theirs = [f"{pacs.url}/instances/{oid}/rendered" for oid in orthanc_ids]
        results["orthanc_sequential"] = len(theirs) / peer.evaluate(
            SEQUENTIAL, [theirs, {"Accept": "image/jpeg"}]
        )
        peer_context.close()
        context.close()
        browser.close()
    return results


def _spread(values: list[float]) -> str:
    return (
        f"median {statistics.median(values):5.0f} ms (min {min(values):.0f}, max {max(values):.0f}, "
        f"{len(values)} runs)"
    )


def report(results: dict, args) -> None:
    print(
        f"viewer benchmark: {args.images}-image CT series (256x256, 12-bit), gunicorn 2 workers x 4 threads "
        f"(dicomsvc.gunicorn_conf), Chromium {results['chromium']} headless 1280x800, "
        f"{os.cpu_count()} CPUs, {args.cold_runs} cold runs, {args.loads} warm loads"
    )
    print(
        "(shared machine: figures are noisy; compare medians, and run it again before reading much into them)"
    )
    print(f"time to first image, empty render cache: {_spread(results['cold'])}   (target <= 500 ms)")
    print(f"time to first image, warm:               {_spread(results['warm'])}")
    print("each load, ms from navigation start (start-end): page, viewer.js, session, first image request")
    for cold, b in results["breakdown"]:
        print(
            f"  {'cold' if cold else 'warm'}: shown {b['shown']:4d}   page {b['page']}  "
            f"script {b['script']}  session {b['session']}  image {b['image']}"
        )
    print(f"scrolling, empty render cache, at once:   {results['scroll_cold']:7.1f} images/s (target >= 30)")
    print(f"scrolling, right after first image:      {results['scroll_prefetching']:7.1f} images/s")
    print(f"scrolling, series already in the page:   {results['scroll_cached']:7.1f} images/s")
    ours, theirs = results["ours_sequential"], results["orthanc_sequential"]
    print(
        f"sequential fetch+decode, no prefetch: ours {ours:.1f} images/s (render cache miss), "
        f"Orthanc /instances/{{id}}/rendered {theirs:.1f} images/s -> ratio {ours / theirs:.2f}"
    )


if __name__ == "__main__":
    main()
    sys.exit(0)

"""Renderer latency: dicomsvc.dicom.render beside pydicom's textbook recipe and Orthanc, same run.

    .venv/bin/python bench/render.py [--runs 200] [--frames 200] [--no-orthanc]

Figures (p50/p95 in ms; "cold" = no cache of ours, the file in the OS page cache, as a thumbnail
request after an upload sees it):
1. a 512 x 512 16-bit CT (rescale, window) to a 256 px JPEG, to a native-size PNG, with a window
   override (the viewer's window/level drag);
2. one frame of a 512 x 512 x N-frame instance, native and RLE, at a random frame number.
Peers: pydicom's documented recipe (dcmread, pixel_array, apply_modality_lut, apply_voi_lut,
Pillow), and Orthanc 1.10's /instances/{id}/rendered (over localhost HTTP, so ~0.3 ms of that is
the HTTP round trip). Candidates of a section run in turn within each round, so load on the shared
machine weighs on all alike; read the ratios. Bounded: about a minute with the defaults.
"""

from __future__ import annotations

import argparse
import io
import random
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels import apply_modality_lut, apply_voi_lut
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, JPEG2000Lossless, RLELossless, generate_uid

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dicomsvc.dicom.render import render_image  # noqa: E402


def ct_dataset(frames: int = 1, seed: int = 0) -> Dataset:
    """A CT-like 512 x 512 phantom (16 bits allocated, 12 stored): air, a water disc, some bone, noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:512, :512]
    body = ((yy - 256) ** 2 + (xx - 256) ** 2 < 220**2) * 1024.0
    bone = ((yy - 200) ** 2 + (xx - 300) ** 2 < 30**2) * 900.0
    base = body + bone
    stack = np.stack([base + rng.normal(0, 25, base.shape) + 5 * i for i in range(frames)])
    arr = np.clip(stack, 0, 4095).astype(np.uint16)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = CTImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientID, ds.PatientName, ds.Modality = "BENCH", "BENCH^RENDER", "CT"
    ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = 1, -1024, "HU"
    ds.WindowCenter, ds.WindowWidth = 40, 400
    ds.set_pixel_data(arr if frames > 1 else arr[0], "MONOCHROME2", 12)
    if frames > 1:
        ds.NumberOfFrames = frames
    return ds


def pydicom_recipe(path: Path, frame: int | None = None, size: int = 256) -> bytes:
    """What pydicom's documentation shows: read all, decode all, modality LUT, VOI, then Pillow."""
    ds = pydicom.dcmread(path)
    arr = ds.pixel_array
    if frame is not None:
        arr = arr[frame]
    out = apply_voi_lut(apply_modality_lut(arr, ds), ds).astype(np.float64)
    low, high = out.min(), out.max()
    image = Image.fromarray(((out - low) / max(high - low, 1) * 255).astype(np.uint8))
    image.thumbnail((size, size), Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


def measure(candidates: dict[str, Callable[[], object]], runs: int) -> dict[str, tuple[float, float]]:
    """p50/p95 in ms of each candidate, run in turn within each round so that the machine's load
    at any moment weighs on all of them alike."""
    times: dict[str, list[float]] = {label: [] for label in candidates}
    for function in candidates.values():
        function()  # warm the code path (imports, plugin discovery), not a cache
    for _ in range(runs):
        for label, function in candidates.items():
            start = time.perf_counter()
            function()
            times[label].append((time.perf_counter() - start) * 1000)
    figures = {}
    for label, values in times.items():
        values.sort()
        figures[label] = (statistics.median(values), values[min(len(values) - 1, int(len(values) * 0.95))])
    return figures


def report(figures: dict[str, tuple[float, float]], reference: str) -> None:
    base = figures[reference][0]
    for label, (p50, p95) in figures.items():
        ratio = f"   {p50 / base:5.2f}x ours" if label.startswith("peer") else ""
        print(f"  {label:<62} p50 {p50:8.2f} ms   p95 {p95:8.2f} ms{ratio}")


def orthanc_peer(workdir: Path, files: dict[str, Path]):
    """Start Orthanc, upload ``files``, return (server, {name: orthanc id}) or None when unavailable."""
    try:
        import requests

        from tests.support.orthanc import orthanc_server
    except ImportError as exc:  # pragma: no cover
        print(f"  (Orthanc peer unavailable: {exc})")
        return None
    context = orthanc_server(workdir / "orthanc")
    server = context.__enter__()
    session = requests.Session()
    session.auth = server.auth
    ids = {}
    for name, path in files.items():
        response = session.post(f"{server.url}/instances", data=path.read_bytes(), timeout=120)
        response.raise_for_status()
        ids[name] = response.json()["ID"]
    return context, server, session, ids


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--no-orthanc", action="store_true")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    random.seed(1)

    with tempfile.TemporaryDirectory(prefix="bench-render-") as tmp:
        workdir = Path(tmp)
        ct = workdir / "ct.dcm"
        ct_dataset().save_as(ct, enforce_file_format=True)
        ct_j2k = workdir / "ct_j2k.dcm"
        j2k = ct_dataset()
        j2k.compress(JPEG2000Lossless, encoding_plugin="pylibjpeg")
        j2k.save_as(ct_j2k, enforce_file_format=True)
        multi = workdir / "multi.dcm"
        multi_ds = ct_dataset(args.frames, seed=1)
        multi_ds.save_as(multi, enforce_file_format=True)
        multi_rle = workdir / "multi_rle.dcm"
        multi_ds.compress(RLELossless)
        multi_ds.save_as(multi_rle, enforce_file_format=True)
        del multi_ds

        peer = None if args.no_orthanc else orthanc_peer(workdir, {"ct": ct, "multi": multi})
        frames = args.frames
        few = max(3, min(10, args.runs // 20))  # whole-file decodes are slow: fewer runs

        print(
            f"512 x 512 16-bit CT, {args.runs} rounds (cold: no render cache; peers ran in the same rounds)"
        )
        with ct.open("rb") as stream:
            data = stream.read()
        single = {
            "dicomsvc render_image -> 256 px JPEG": lambda: render_image(ct),
            "dicomsvc render_image -> native PNG": lambda: render_image(ct, size=None, fmt="png"),
            "dicomsvc render_image -> 256 px JPEG, window override": lambda: render_image(
                ct, window_center=400, window_width=1800
            ),
            "dicomsvc render_image from an in-memory file object": lambda: render_image(io.BytesIO(data)),
            "peer: pydicom recipe -> 256 px JPEG": lambda: pydicom_recipe(ct),
        }
        if peer:
            _, server, session, ids = peer
            ct_url = f"{server.url}/instances/{ids['ct']}/rendered?width=256&height=256"
            single["peer: Orthanc /instances/{id}/rendered 256 px JPEG (HTTP)"] = lambda: session.get(
                ct_url, headers={"Accept": "image/jpeg"}
            ).raise_for_status()
        report(measure(single, args.runs), "dicomsvc render_image -> 256 px JPEG")
        if peer:
            answer = Image.open(io.BytesIO(session.get(ct_url, headers={"Accept": "image/jpeg"}).content))
            print(f"    (Orthanc answered a {answer.format} of {answer.size[0]} x {answer.size[1]} px)")
        report(
            measure(
                {
                    "dicomsvc render_image -> 256 px JPEG, from JPEG 2000 lossless": lambda: render_image(
                        ct_j2k
                    )
                },
                max(10, args.runs // 4),
            ),
            "dicomsvc render_image -> 256 px JPEG, from JPEG 2000 lossless",
        )

        mb = multi.stat().st_size / 1e6
        print(f"\nOne frame of a 512 x 512 x {frames}-frame instance ({mb:.0f} MB native), random frame")
        multi_frame = {
            "dicomsvc render_image(frame=k), native": lambda: render_image(
                multi, frame=random.randrange(frames)
            ),
            "dicomsvc render_image(frame=k), RLE Lossless": lambda: render_image(
                multi_rle, frame=random.randrange(frames)
            ),
        }
        if peer:
            multi_url = f"{server.url}/instances/{ids['multi']}/frames/{{}}/rendered?width=256&height=256"
            multi_frame["peer: Orthanc /instances/{id}/frames/{k}/rendered (HTTP)"] = lambda: session.get(
                multi_url.format(random.randrange(frames)), headers={"Accept": "image/jpeg"}
            ).raise_for_status()
        figures = measure(multi_frame, args.runs)
        figures.update(
            measure(
                {
                    f"peer: pydicom recipe (decodes all frames; {few} runs)": lambda: pydicom_recipe(
                        multi, frame=random.randrange(frames)
                    )
                },
                few,
            )
        )
        report(figures, "dicomsvc render_image(frame=k), native")
        if peer:
            peer[0].__exit__(None, None, None)
        print("\nShared 2-core machine: figures vary between runs; compare ratios within one run.")


if __name__ == "__main__":
    main()

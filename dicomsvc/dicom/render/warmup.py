"""Warm a web worker's rendering stack before it serves: ``warm_up()`` renders a few tiny images.

A fresh process pays, on its first rendering, for imports and one-time set-up that every later
rendering skips: the renderer's modules, Pillow's JPEG and PNG plugins (``Image.preinit``),
pydicom's pixel machinery and, on the first compressed frame, the codec's own library. Measured on
a 256x256 CT slice: about 260 ms the first time, 2 ms after (busy 2-core machine). That cost landed
on a viewer's first image whenever a gunicorn worker had not rendered yet (bench/viewer.py). The
gunicorn configuration (``dicomsvc/gunicorn_conf.py``, ``post_worker_init``) calls this once per
worker, before the worker accepts requests.
"""

from __future__ import annotations

import io
import logging
import time

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import ExplicitVRLittleEndian, JPEGBaseline8Bit, SecondaryCaptureImageStorage

from . import render_image

logger = logging.getLogger("dicomsvc.render")


def _image(pixels: np.ndarray, transfer_syntax, pixel_data: bytes, photometric: str) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = transfer_syntax
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.Rows, ds.Columns = pixels.shape[:2]
    ds.SamplesPerPixel = 1 if pixels.ndim == 2 else 3
    ds.PhotometricInterpretation = photometric
    if ds.SamplesPerPixel == 3:
        ds.PlanarConfiguration = 0
    ds.BitsAllocated = ds.BitsStored = pixels.dtype.itemsize * 8
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 0
    ds.PixelData = pixel_data
    ds.set_original_encoding(False, True)
    return ds


def _samples() -> list[Dataset]:
    ramp = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 64).astype(np.uint16)
    native = _image(ramp, ExplicitVRLittleEndian, ramp.tobytes(), "MONOCHROME2")
    colour = np.zeros((8, 8, 3), dtype=np.uint8)
    colour[..., 0] = 200
    encoded = io.BytesIO()
    Image.fromarray(colour).save(encoded, "JPEG", quality=90)
    jpeg = _image(colour, JPEGBaseline8Bit, encapsulate([encoded.getvalue()]), "YBR_FULL_422")
    return [native, jpeg]


def warm_up() -> float:
    """Render a native grayscale and a JPEG colour image to JPEG and PNG; returns the seconds it took.
    Never raises: a worker that cannot warm up still serves (its first rendering is then slower)."""
    started = time.perf_counter()
    try:
        for ds in _samples():
            render_image(ds, size=16)
            render_image(ds, size=None, fmt="png")
    except Exception:  # noqa: BLE001 - warming is an optimisation, never a reason not to serve
        logger.warning("the renderer could not be warmed up", exc_info=True)
    return time.perf_counter() - started

"""Render a DICOM image (one frame) to JPEG or PNG bytes for thumbnails and the viewer.

Every transfer syntax pydicom can decode with the installed plugins (pylibjpeg-libjpeg, -openjpeg,
-rle, and pydicom's own native/deflate/RLE support) renders: JPEG baseline, extended and lossless,
JPEG-LS, JPEG 2000, RLE, deflate, big and little endian, explicit and implicit VR.

    from dicomsvc.dicom.render import render_image, NoPixelData, RenderError
    jpeg = render_image(path, size=256)
    png = render_image(fileobj, frame=3, window_center=40, window_width=400, fmt="png", size=None)
"""

from __future__ import annotations

import io
import math
import operator
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset

from .display import AUTO_WINDOW_PERCENTILES, default_window, frame_view, to_display
from .errors import NoPixelData, PixelLimitExceeded, RenderError
from .source import Source, header_frame_count, open_instance, require_pixel_data

__all__ = [
    "AUTO_WINDOW_PERCENTILES",
    "DEFAULT_MAX_FRAME_PIXELS",
    "DEFAULT_MAX_PIXELS",
    "MAX_OUTPUT_SIZE",
    "NoPixelData",
    "PixelLimitExceeded",
    "RenderError",
    "check_pixel_count",
    "check_pixel_dimensions",
    "display_window",
    "frame_count",
    "render_image",
]

# Caps checked on the header before anything is decoded (settings RENDER_MAX_PIXELS and
# RENDER_MAX_FRAME_PIXELS override them). The instance cap bounds what a header may claim at all;
# the frame cap bounds what one decode may allocate (a 2**26-pixel frame is 8192 x 8192, or a
# large mammogram with room to spare; working memory is a few bytes per pixel).
DEFAULT_MAX_PIXELS = 2**32
DEFAULT_MAX_FRAME_PIXELS = 2**26
MAX_OUTPUT_SIZE = 8192
FORMATS = {"jpeg": "JPEG", "jpg": "JPEG", "png": "PNG"}
# Pixel spacings further apart than this are drawn with their true aspect ratio.
_ASPECT_TOLERANCE = 0.01


def frame_count(ds: Dataset) -> int:
    """Number of frames the header declares: NumberOfFrames, else 1; 0 when there is no image
    (no Rows). Reads header values only (``ds`` may have been read with ``stop_before_pixels``)."""
    return header_frame_count(ds)


def check_pixel_dimensions(ds: Dataset, *, max_pixels: int) -> None:
    """Refuse a header whose rows x columns x frames x samples exceeds ``max_pixels``.

    Reads header values only, so it is safe before any decode. Raises ``PixelLimitExceeded``; a
    header with no image (no Rows) passes, malformed dimensions raise ``RenderError``.
    """
    if "Rows" not in ds:
        return
    rows, columns, samples = _dimension(ds, "Rows"), _dimension(ds, "Columns"), _samples(ds)
    check_pixel_count(rows, columns, samples, frame_count(ds), max_pixels=max_pixels)


def check_pixel_count(rows: int, columns: int, samples: int, frames: int, *, max_pixels: int) -> None:
    """``check_pixel_dimensions`` on values already read (frames: at least 1)."""
    if rows * columns * samples * max(frames, 1) > max_pixels:
        raise PixelLimitExceeded(
            f"the image is too large: {rows} x {columns} pixels x {frames} frames x "
            f"{samples} samples exceeds the limit of {max_pixels} pixels"
        )


def _dimension(ds: Dataset, keyword: str) -> int:
    try:
        value = int(ds.get(keyword))
    except (TypeError, ValueError):
        raise RenderError(f"{keyword} is missing or not a number") from None
    if value <= 0:
        raise RenderError(f"{keyword} must be positive")
    return value


def _samples(ds: Dataset) -> int:
    try:
        samples = int(ds.get("SamplesPerPixel") or 1)
    except (TypeError, ValueError):
        raise RenderError("SamplesPerPixel is not a number") from None
    if samples <= 0:
        raise RenderError("SamplesPerPixel must be positive")
    return samples


def _setting(name: str, default: int) -> int:
    try:
        from django.conf import settings

        return int(getattr(settings, name, default)) if settings.configured else default
    except ImportError:  # pragma: no cover - the renderer also works without Django
        return default


def render_image(
    source: Source,
    *,
    frame: int | None = None,
    size: int | None = 256,
    window_center: float | None = None,
    window_width: float | None = None,
    fmt: str = "jpeg",
    quality: int = 85,
) -> bytes:
    """Render one frame of ``source`` (path, binary file object or ``pydicom.Dataset``) as JPEG or PNG.

    ``frame`` is 0-based; None takes the middle frame. ``size`` is the longest side of the output
    in pixels (None: native size). ``window_center``/``window_width`` override the header's VOI for
    monochrome images (either alone keeps the other from the header or the auto window); colour
    images ignore them. The output is 8-bit grayscale or RGB; pixels that are not square
    (PixelAspectRatio, PixelSpacing) are drawn with their true proportions.

    Raises ``NoPixelData`` when the instance holds no image, ``PixelLimitExceeded`` when its header
    claims too many pixels, ``RenderError`` when it cannot be decoded or an argument is invalid.
    Their messages are safe to show to clients.
    """
    image_format = _check_arguments(frame, size, fmt, quality)
    window_center = _finite(window_center, "window_center")
    window_width = _finite(window_width, "window_width")
    if window_width is not None and window_width <= 0:
        raise RenderError("window_width must be a positive number")
    with _decoded_frame(source, frame) as (arr, props, header, view):
        pixels = to_display(arr, props, header, view, window_center=window_center, window_width=window_width)
        target = _output_size(pixels.shape[1], pixels.shape[0], view, None if size is None else int(size))
    return _encode(pixels, target, image_format, int(quality))


def display_window(source: Source, *, frame: int | None = None) -> tuple[float, float] | None:
    """The (window_center, window_width), in modality units (e.g. HU), that ``render_image`` shows
    ``frame`` with when given no window: the header's, else the auto window. A viewer starts its
    window/level drag from it. None for colour images, and when a VOI LUT Sequence applies.

    Decodes the frame (as rendering does); raises what ``render_image`` raises.
    """
    _check_arguments(frame, None, "jpeg", 85)
    with _decoded_frame(source, frame) as (arr, props, _header, view):
        if str(props.get("photometric_interpretation") or "").upper() not in ("MONOCHROME1", "MONOCHROME2"):
            return None
        window = default_window(arr, props, view)
    return None if window is None else (window.center, window.width)


@contextmanager
def _decoded_frame(
    source: Source, frame: int | None
) -> Iterator[tuple[np.ndarray, dict[str, Any], Dataset, Dataset]]:
    """Frame ``frame`` (None: the middle one) of ``source`` after the header checks: the decoded
    array, its pixel properties, the instance's header and the frame's display attributes."""
    with open_instance(source) as instance:
        require_pixel_data(instance)
        header = instance.header
        check_pixel_dimensions(header, max_pixels=_setting("RENDER_MAX_PIXELS", DEFAULT_MAX_PIXELS))
        frame_pixels = _dimension(header, "Rows") * _dimension(header, "Columns") * _samples(header)
        if frame_pixels > _setting("RENDER_MAX_FRAME_PIXELS", DEFAULT_MAX_FRAME_PIXELS):
            raise PixelLimitExceeded("one frame of this image is too large to render")
        frames = frame_count(header)
        index = frames // 2 if frame is None else operator.index(frame)
        if index >= frames:
            raise RenderError(f"frame {index} does not exist: the instance has {frames} frame(s)")
        arr, props = instance.decode_frame(index)
        yield arr, props, header, frame_view(header, index)


def _whole(value: object) -> int | None:
    try:
        return operator.index(value)  # int and numpy integers, not floats or strings
    except TypeError:
        return None


def _finite(value: float | None, name: str) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise RenderError(f"{name} must be a number") from None
    if not math.isfinite(number):
        raise RenderError(f"{name} must be a finite number")
    return number


def _check_arguments(frame: int | None, size: int | None, fmt: str, quality: int) -> str:
    if frame is not None and ((index := _whole(frame)) is None or index < 0):
        raise RenderError("frame must be a whole number, 0 or more")
    if size is not None and ((side := _whole(size)) is None or not 1 <= side <= MAX_OUTPUT_SIZE):
        raise RenderError(f"size must be a whole number from 1 to {MAX_OUTPUT_SIZE}")
    if (level := _whole(quality)) is None or not 1 <= level <= 100:
        raise RenderError("quality must be a whole number from 1 to 100")
    image_format = FORMATS.get(str(fmt).lower())
    if image_format is None:
        raise RenderError("format must be jpeg or png")
    return image_format


def _pixel_ratio(view: Dataset) -> float:
    """Height / width of one pixel (1.0 when square or unknown)."""
    for keyword in ("PixelAspectRatio", "PixelSpacing", "ImagerPixelSpacing", "NominalScannedPixelSpacing"):
        value = view.get(keyword)
        try:
            vertical, horizontal = float(value[0]), float(value[1])
        except (TypeError, ValueError, IndexError):
            continue
        if vertical > 0 and horizontal > 0 and math.isfinite(vertical / horizontal):
            ratio = vertical / horizontal
            return ratio if 0.1 <= ratio <= 10 and abs(ratio - 1) > _ASPECT_TOLERANCE else 1.0
    return 1.0


def _output_size(columns: int, rows: int, view: Dataset, size: int | None) -> tuple[int, int]:
    ratio = _pixel_ratio(view)
    # Stretch the coarser axis so that pixels become square, never shrink native detail.
    width, height = (columns, rows * ratio) if ratio >= 1 else (columns / ratio, rows)
    if size is not None:
        scale = size / max(width, height)
        width, height = width * scale, height * scale
    elif max(width, height) > MAX_OUTPUT_SIZE:
        scale = MAX_OUTPUT_SIZE / max(width, height)
        width, height = width * scale, height * scale
    return max(1, round(width)), max(1, round(height))


def _encode(pixels: np.ndarray, target: tuple[int, int], image_format: str, quality: int) -> bytes:
    image = Image.fromarray(np.ascontiguousarray(pixels))  # uint8: "L", or "RGB" with 3 samples
    if image.size != target:
        # Shrinking: average whole blocks of pixels first (Image.reduce, an exact area average and
        # ten times faster), then bicubic for the remaining factor, under 2. Enlarging: bicubic.
        image = image.resize(target, Image.Resampling.BICUBIC, reducing_gap=1.0)
    buffer = io.BytesIO()
    if image_format == "JPEG":
        image.save(buffer, "JPEG", quality=quality)
    else:
        image.save(buffer, "PNG", compress_level=3)
    return buffer.getvalue()

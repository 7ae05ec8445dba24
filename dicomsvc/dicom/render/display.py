"""From a decoded frame to 8-bit display pixels: modality LUT, VOI, photometric interpretation.

Grayscale follows the standard pipeline (PS3.4 N.2): modality LUT (Rescale Slope/Intercept or the
Modality LUT Sequence), then VOI (a caller's window, else the header's Window Center/Width or VOI LUT
Sequence, else a percentile window), then MONOCHROME1 inversion. Colour is converted to RGB.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
from pydicom.dataset import Dataset
from pydicom.pixels import (
    apply_color_lut,
    apply_modality_lut,
    apply_voi,
    apply_windowing,
    convert_color_space,
)

from .errors import RenderError

# Auto window: the 0.5th-99.5th percentiles ignore the padding and the few hot pixels that a
# min/max window lets dominate (CT air outside the field of view, metal).
AUTO_WINDOW_PERCENTILES = (0.5, 99.5)
# Percentiles are estimated on about this many samples at most (a strided subset of larger frames).
_AUTO_WINDOW_SAMPLES = 1 << 20
# Integer frames whose values span at most this many are rendered through a lookup table.
_LUT_MAX_ENTRIES = 1 << 17

# Attributes that may be overridden per frame by the functional groups of enhanced multi-frame IODs.
_FRAME_KEYWORDS = (
    "RescaleSlope",
    "RescaleIntercept",
    "ModalityLUTSequence",
    "WindowCenter",
    "WindowWidth",
    "VOILUTFunction",
    "VOILUTSequence",
    "PixelSpacing",
    "PixelAspectRatio",
    "ImagerPixelSpacing",
    "NominalScannedPixelSpacing",
    "PixelPaddingValue",
    "PixelPaddingRangeLimit",
    "PresentationLUTShape",
)
_FUNCTIONAL_GROUPS = (
    "PixelValueTransformationSequence",
    "FrameVOILUTSequence",
    "PixelMeasuresSequence",
)


def frame_view(header: Dataset, index: int) -> Dataset:
    """The display attributes that apply to frame ``index``: the header's own, overridden by the shared
    then the per-frame functional groups (Enhanced CT/MR/XA...). A new Dataset: the header is never
    modified (pydicom's windowing helpers write to the dataset they are given)."""
    view = Dataset()
    view.file_meta = getattr(header, "file_meta", Dataset())
    implicit, little = getattr(header, "original_encoding", (None, None))
    if implicit is not None:
        view.set_original_encoding(implicit, little)
    for keyword in _FRAME_KEYWORDS:
        if keyword in header:
            view[keyword] = header[keyword]
    groups = []
    for sequence, position in (
        ("SharedFunctionalGroupsSequence", 0),
        ("PerFrameFunctionalGroupsSequence", index),
    ):
        items = header.get(sequence)
        if items and len(items) > position:
            groups.append(items[position])
    for group in groups:
        for name in _FUNCTIONAL_GROUPS:
            macro = group.get(name)
            if macro:
                for element in macro[0]:
                    if element.keyword in _FRAME_KEYWORDS:
                        view[element.tag] = element
    return view


@dataclass(frozen=True)
class Window:
    center: float
    width: float
    function: str = "LINEAR"


def to_display(
    arr: np.ndarray,
    props: dict[str, Any],
    header: Dataset,
    view: Dataset,
    *,
    window_center: float | None,
    window_width: float | None,
) -> np.ndarray:
    """8-bit pixels, (rows, columns) for grayscale or (rows, columns, 3) RGB."""
    photometric = str(props.get("photometric_interpretation") or "").upper()
    if photometric in ("MONOCHROME1", "MONOCHROME2"):
        out = _grayscale(arr, props, view, window_center=window_center, window_width=window_width)
        # MONOCHROME1 shows its lowest value white; so does a Presentation LUT Shape of INVERSE
        # (PS3.3 C.11.6: for MONOCHROME1 that is the same inversion, not a second one).
        inverse = str(view.get("PresentationLUTShape") or "").strip().upper() == "INVERSE"
        return 255 - out if photometric == "MONOCHROME1" or inverse else out
    if photometric == "PALETTE COLOR":
        return _palette(arr, header)
    if photometric in (
        "RGB",
        "YBR_FULL",
        "YBR_FULL_422",
        "YBR_PARTIAL_422",
        "YBR_PARTIAL_420",
        "YBR_ICT",
        "YBR_RCT",
    ):
        return _colour(arr, props, photometric)
    raise RenderError(f"photometric interpretation {photometric or '(none)'} is not supported")


# --- grayscale ---------------------------------------------------------------------------------


def _grayscale(
    arr: np.ndarray,
    props: dict[str, Any],
    view: Dataset,
    *,
    window_center: float | None,
    window_width: float | None,
) -> np.ndarray:
    frame, expand = _monochrome(arr, props, view)
    return expand(frame.display(window_center, window_width))


def default_window(arr: np.ndarray, props: dict[str, Any], view: Dataset) -> Window | None:
    """The window a monochrome frame is shown with when the caller gives none (header, or stored
    range, or auto); None when its VOI LUT Sequence applies instead."""
    frame, _ = _monochrome(arr, props, view)
    return frame.default_window()


def _monochrome(
    arr: np.ndarray, props: dict[str, Any], view: Dataset
) -> tuple[_Monochrome, Callable[[np.ndarray], np.ndarray]]:
    """The frame's display pipeline input, and how to put its output back into the frame's shape."""
    if arr.ndim != 2:
        raise RenderError("a monochrome frame must have one sample per pixel")
    if arr.dtype.kind in "iu" and arr.size:
        low, high = int(arr.min()), int(arr.max())
        if high - low < _LUT_MAX_ENTRIES:
            # The whole pipeline runs once per stored value in the frame's range, then one gather
            # maps the frame: a 512 x 512 CT costs a few thousand windowing operations, not 262,144.
            if arr.dtype.kind == "u" and high < _LUT_MAX_ENTRIES:
                low, index = 0, arr  # unsigned values index the table as they are
            else:
                index = np.subtract(arr, low, dtype=np.int32)
            domain = np.arange(low, high + 1, dtype=np.int64)

            def histogram() -> np.ndarray:
                flat = index.ravel()
                return np.bincount(flat[:: max(1, flat.size // _AUTO_WINDOW_SAMPLES)], minlength=domain.size)

            return _Monochrome(domain, histogram, props, view), lambda curve: curve[index]
    return _Monochrome(arr, None, props, view), lambda curve: curve


class _Monochrome:
    """Stored values (a frame, or every value of its range with ``histogram`` counting the pixels
    that hold each) through the modality LUT, ready for a VOI."""

    def __init__(
        self,
        stored: np.ndarray,
        histogram: Callable[[], np.ndarray] | None,
        props: dict[str, Any],
        view: Dataset,
    ) -> None:
        self.stored, self.histogram, self.props, self.view = stored, histogram, props, view
        self.values = apply_modality_lut(stored, view)
        self.transformed = self.values is not stored

    def display(self, center: float | None, width: float | None) -> np.ndarray:
        if center is not None or width is not None:
            base = self.default_window() or self.auto_window()
            return _apply_window(self.values, _override_window(base, center, width))
        window = self.default_window()
        if window is None:
            return self.voi_lut
        return _apply_window(self.values, window)

    def default_window(self) -> Window | None:
        window = _header_window(self.view)
        if window is not None:
            return window
        if self.view.get("VOILUTSequence") and self.voi_lut is not None:
            return None
        bits_stored = int(self.props.get("bits_stored") or 8)
        unsigned = not int(self.props.get("pixel_representation") or 0)
        if not self.transformed and unsigned and bits_stored <= 8 and self.values.dtype.kind in "iu":
            # Small unsigned data without any VOI (secondary captures, masks, 1-bit images): show
            # the stored range as it is rather than stretching its contrast.
            top = 2**bits_stored - 1
            return Window(top / 2, top, "LINEAR_EXACT")
        return self.auto_window()

    @cached_property
    def voi_lut(self) -> np.ndarray | None:
        return _apply_voi_lut(self.values, self.view) if self.view.get("VOILUTSequence") else None

    def auto_window(self) -> Window:
        # Padding (the air outside a CT's field of view, often -2000) is not part of the image: it
        # would pull the window down.
        padding = _padding_mask(self.stored, self.view)
        if self.histogram is not None:
            counts = self.histogram()
            if padding is not None and counts[~padding].any():
                counts[padding] = 0
            return _auto_window(self.values, counts)
        if padding is not None and not padding.all():
            return _auto_window(self.values[~padding], None)
        return _auto_window(self.values, None)


def _float_or_none(value: Any) -> float | None:
    if value is None or value == "":
        return None
    try:
        if not isinstance(value, str | bytes) and hasattr(value, "__len__"):
            value = value[0] if len(value) else None
        number = float(value) if value is not None else None
    except (TypeError, ValueError, IndexError):
        return None
    return number if number is not None and math.isfinite(number) else None


def _header_window(view: Dataset) -> Window | None:
    try:
        center = _float_or_none(view.get("WindowCenter"))
        width = _float_or_none(view.get("WindowWidth"))
        function = str(view.get("VOILUTFunction") or "LINEAR").strip().upper()
    except Exception:  # an unreadable window is as good as none
        return None
    if center is None or width is None or width <= 0:
        return None
    if function not in ("LINEAR", "LINEAR_EXACT", "SIGMOID"):
        function = "LINEAR"
    return Window(center, width, function)


def _override_window(base: Window, center: float | None, width: float | None) -> Window:
    """The caller's center and/or width (validated by render_image) over ``base``."""
    return Window(
        base.center if center is None else float(center),
        base.width if width is None else float(width),
        base.function,
    )


def _padding_mask(stored: np.ndarray, view: Dataset) -> np.ndarray | None:
    """Where ``stored`` holds Pixel Padding Value (up to Pixel Padding Range Limit); None without."""
    try:
        padding = view.get("PixelPaddingValue")
        if padding is None:
            return None
        limit = view.get("PixelPaddingRangeLimit")
        low, high = sorted((int(padding), int(padding if limit is None else limit)))
    except (TypeError, ValueError):
        return None
    return (stored >= low) & (stored <= high)


def _auto_window(values: np.ndarray, counts: np.ndarray | None) -> Window:
    """A window over the AUTO_WINDOW_PERCENTILES of the frame's values (inverted-CDF percentiles);
    ``counts`` weighs each value (a histogram) when ``values`` is the range rather than the frame."""
    if counts is None:
        flat = values.ravel()
        flat = flat[:: max(1, flat.size // _AUTO_WINDOW_SAMPLES)]
        if flat.dtype.kind == "f":
            flat = flat[np.isfinite(flat)]
        if flat.size == 0:
            return Window(0.0, 1.0, "LINEAR_EXACT")
        low, high = (float(v) for v in np.percentile(flat, AUTO_WINDOW_PERCENTILES, method="inverted_cdf"))
        minimum, maximum = float(flat.min()), float(flat.max())
    else:
        order = np.argsort(values, kind="stable")
        ordered = values[order]
        cumulative = np.cumsum(counts[order])
        targets = np.array(AUTO_WINDOW_PERCENTILES) / 100 * cumulative[-1]
        low, high = (float(ordered[i]) for i in np.searchsorted(cumulative, targets, side="left"))
        present = ordered[counts[order] > 0]
        minimum, maximum = float(present[0]), float(present[-1])
    if high <= low:
        low, high = minimum, maximum
    if high <= low:
        high = low + 1.0
    return Window((low + high) / 2, high - low, "LINEAR_EXACT")


def _apply_window(values: np.ndarray, window: Window) -> np.ndarray:
    function = window.function
    if function == "LINEAR" and window.width < 1:
        # LINEAR needs a width of at least 1 (PS3.3 C.11.2.1.2.1); narrower windows on float
        # data (PET SUV, parametric maps) are meant exactly.
        function = "LINEAR_EXACT"
    # pydicom scales the window's output to the range given by BitsStored/PixelRepresentation of
    # the dataset it gets: a one-off dataset saying "unsigned 8 bits" makes that range 0-255.
    voi = Dataset()
    voi.PhotometricInterpretation = "MONOCHROME2"
    voi.BitsStored = 8
    voi.PixelRepresentation = 0
    voi.WindowCenter = window.center
    voi.WindowWidth = window.width
    voi.VOILUTFunction = function
    try:
        out = apply_windowing(values, voi)
    except ValueError as exc:
        raise RenderError("the window cannot be applied") from exc
    return _round_to_byte(out)


def _apply_voi_lut(values: np.ndarray, view: Dataset) -> np.ndarray | None:
    try:
        item = view.VOILUTSequence[0]
        bits = int(item.LUTDescriptor[2])
        if values.dtype.kind == "f":
            values = np.rint(values).astype(np.int64)
        out = apply_voi(values, view)
    except Exception:  # a malformed LUT falls back to the auto window
        return None
    return _scale_to_byte(out, 0, 2**bits - 1)


def _scale_to_byte(values: np.ndarray, low: float, high: float) -> np.ndarray:
    if high <= low:
        return np.zeros(values.shape, dtype=np.uint8)
    scaled = (values.astype(np.float32) - np.float32(low)) * np.float32(255.0 / (high - low))
    return _round_to_byte(scaled)


def _round_to_byte(values: np.ndarray) -> np.ndarray:
    out = np.clip(values, 0, 255)
    if out.dtype.kind != "f":
        return out.astype(np.uint8)
    np.nan_to_num(out, copy=False, nan=0.0)  # NaN in float pixel data shows black
    return np.rint(out, out=out).astype(np.uint8)


# --- colour ------------------------------------------------------------------------------------


def _colour(arr: np.ndarray, props: dict[str, Any], photometric: str) -> np.ndarray:
    if arr.ndim != 3 or arr.shape[-1] != 3:
        raise RenderError("a colour frame must have three samples per pixel")
    bits_stored = int(props.get("bits_stored") or 8)
    if arr.dtype != np.uint8:
        arr = _scale_to_byte(arr, 0, 2**bits_stored - 1)
    if photometric in ("YBR_FULL", "YBR_FULL_422"):
        # pydicom converts these while decoding; a plugin that could not is caught here.
        arr = convert_color_space(arr, "YBR_FULL", "RGB")
    elif photometric in ("YBR_PARTIAL_422", "YBR_PARTIAL_420"):
        arr = _ybr_partial_to_rgb(arr)
    # RGB as is; YBR_ICT/YBR_RCT: the JPEG 2000 decoder applies the inverse component transform.
    return arr


def _ybr_partial_to_rgb(arr: np.ndarray) -> np.ndarray:
    """ITU-R BT.601 studio-swing YCbCr (Y 16-235, Cb/Cr 16-240) to full-range RGB (PS3.3 C.7.6.3.1.2)."""
    ybr = arr.astype(np.float32)
    y = (ybr[..., 0] - 16.0) * (255.0 / 219.0)
    cb = ybr[..., 1] - 128.0
    cr = ybr[..., 2] - 128.0
    rgb = np.empty(arr.shape, dtype=np.float32)
    rgb[..., 0] = y + 1.596027 * cr
    rgb[..., 1] = y - 0.391762 * cb - 0.812968 * cr
    rgb[..., 2] = y + 2.017232 * cb
    return _round_to_byte(rgb)


_PALETTE_DATA = tuple(f"{colour}PaletteColorLookupTableData" for colour in ("Red", "Green", "Blue", "Alpha"))
_PALETTE_DESCRIPTORS = tuple(name.replace("Data", "Descriptor") for name in _PALETTE_DATA)


def _palette_as_read_by_pydicom(header: Dataset) -> Dataset:
    """The header, or a copy of its palette whose OW lookup table data is in little endian byte order.

    PS3.5 7.3: OW values are byte-swapped in a big endian transfer syntax (Explicit VR Big Endian),
    and pydicom keeps an OW value's bytes as stored; its ``apply_color_lut`` reads plain (not
    segmented) table data in the machine's order, so a big endian file's palette came out with its
    bytes swapped (0xFF00 read as 0x00FF: a black image).
    """
    _, little = getattr(header, "original_encoding", (None, None))
    if little is not False or not any(name in header for name in _PALETTE_DATA):
        return header
    palette = Dataset()
    palette.set_original_encoding(False, True)
    for name in _PALETTE_DESCRIPTORS:
        if name in header:
            palette[name] = header[name]
    for name in _PALETTE_DATA:
        if name not in header:
            continue
        value = header[name].value
        if isinstance(value, bytes) and len(value) % 2 == 0:
            value = np.frombuffer(value, dtype=">u2").astype("<u2").tobytes()
        setattr(palette, name, value)
    return palette


def _palette(arr: np.ndarray, header: Dataset) -> np.ndarray:
    if arr.ndim != 2:
        raise RenderError("a palette colour frame must have one sample per pixel")
    try:
        rgb = apply_color_lut(arr, _palette_as_read_by_pydicom(header))
        bits = int(header.RedPaletteColorLookupTableDescriptor[2])
    except Exception as exc:
        raise RenderError("the palette colour lookup table cannot be applied") from exc
    rgb = rgb[..., :3]  # drop an alpha palette, if any
    if rgb.dtype == np.uint8:
        return rgb
    return _scale_to_byte(rgb, 0, 2 ** (16 if bits == 16 else 8) - 1)

"""A pydicom decoding plugin for 12-bit JPEG Extended (Process 2 and 4) through GDCM, the fallback
after pydicom's own plugins.

Some 12-bit JPEG Extended files (pydicom's JPEG-lossy.dcm among them: its SOS parameters are
outside what the sequential process allows) are refused by pylibjpeg's libjpeg and by Pillow,
while dcmtk and GDCM's 12-bit IJG build decode them. pydicom's own GDCM plugin refuses every
12-bit JPEG Extended frame (older GDCM wheels had no 12-bit codec); python-gdcm 3 has one, so this
plugin hands such a frame to GDCM. Registered in ``dicomsvc.dicom.render`` after pydicom's plugins:
a file they decode never reaches it.
"""

from __future__ import annotations

from pydicom.pixels.decoders.base import DecodeRunner
from pydicom.uid import JPEGExtended12Bit

try:
    import gdcm

    # GDCM first tries its 8-bit codec and says so on stderr before the 12-bit one succeeds.
    gdcm.Trace.WarningOff()
    HAVE_GDCM = True
except ImportError:  # pragma: no cover - python-gdcm is a runtime dependency
    HAVE_GDCM = False

DECODER_DEPENDENCIES = {JPEGExtended12Bit: ("python-gdcm>=3.0.10",)}


def is_available(uid: str) -> bool:
    return HAVE_GDCM and uid == JPEGExtended12Bit


def decode_frame(src: bytes, runner: DecodeRunner) -> bytes:
    """One encoded frame to its native pixel bytes (pydicom's decoder plugin contract)."""
    fragment = gdcm.Fragment()
    fragment.SetByteStringValue(src)
    fragments = gdcm.SequenceOfFragments.New()
    fragments.AddFragment(fragment)
    element = gdcm.DataElement(gdcm.Tag(0x7FE0, 0x0010))
    element.SetValue(fragments.__ref__())

    image = gdcm.Image()
    image.SetNumberOfDimensions(2)
    image.SetDimensions((runner.columns, runner.rows, 1))
    image.SetDataElement(element)
    kind = gdcm.PhotometricInterpretation.GetPIType(str(runner.photometric_interpretation))
    image.SetPhotometricInterpretation(gdcm.PhotometricInterpretation(kind))
    if runner.samples_per_pixel > 1:
        image.SetPlanarConfiguration(runner.planar_configuration)
    image.SetTransferSyntax(gdcm.TransferSyntax(gdcm.TransferSyntax.GetTSType(str(JPEGExtended12Bit))))
    bits = runner.bits_stored
    image.SetPixelFormat(
        gdcm.PixelFormat(
            runner.samples_per_pixel, runner.bits_allocated, bits, bits - 1, runner.pixel_representation
        )
    )
    buffer = image.GetBuffer()  # a str carrying bytes (SWIG's char*)
    if not buffer:
        raise ValueError("GDCM could not decode the JPEG Extended frame")
    return buffer.encode("utf-8", "surrogateescape")

"""glibc malloc tuning for a process that handles many ~0.5 MB buffers (DICOM instances).

By default glibc serves each block above its (adaptive) mmap threshold with a fresh mmap and
returns it with munmap when freed, and trims the heap's free top back to the kernel: every upload
then touches hundreds of fresh pages (~400 page faults for a 512 x 512 CT), which costs more CPU
than parsing the instance. ``tune(n)`` makes blocks under ``n`` bytes come from the heap and keeps
up to ``n`` bytes of freed heap for reuse. Called once per process from the settings; a no-op
where the C library is not glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter numbers (malloc.h)
M_MMAP_THRESHOLD = -3


def tune(threshold: int) -> bool:
    """Apply ``threshold`` to glibc's mmap and trim thresholds; False when not applied."""
    if threshold <= 0:
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, threshold)) and bool(mallopt(M_TRIM_THRESHOLD, threshold))

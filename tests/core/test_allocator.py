"""The glibc allocator tuning every process applies from the settings."""

from __future__ import annotations

import platform

import pytest

from dicomsvc import allocator


def test_zero_leaves_the_allocator_alone():
    assert allocator.tune(0) is False


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_a_threshold_is_applied_on_glibc():
    assert allocator.tune(32 * 1024 * 1024) is True

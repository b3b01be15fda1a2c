"""The stubs match the native module (mypy's stubtest)."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from conftest import STRICT


def test_stubs_match_the_native_module() -> None:
    try:
        import mypy  # noqa: F401
    except ImportError:
        if STRICT:
            pytest.fail("mypy is missing (pip install mypy)")
        pytest.skip("mypy is missing")
    result = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "isolette._native", "--ignore-missing-stub"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert shutil.which(sys.executable)


def test_the_statuses_are_cores_in_cores_order() -> None:
    import isolette
    from isolette import _native

    assert [s.value for s in isolette.Status] == list(_native.STATUSES)


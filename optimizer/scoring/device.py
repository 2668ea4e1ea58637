"""The array-module switch: one scoring code path on NumPy (CPU) or CuPy (GPU).

`array_module(device)` returns `(xp, device_name)` where `xp` is `numpy` or `cupy`. CuPy is
imported only when a GPU is asked for (`"gpu"`) or may be used (`"auto"`), never at import time
of this module. `None` means `"auto"`; which device a deployment uses is a setting
(`gridshift.settings`, `GRIDSHIFT_DEVICE`), passed in by the application.

- `"cpu"`: NumPy.
- `"gpu"`: CuPy on CUDA device 0; raises `DeviceUnavailableError` when CuPy is not installed or
  no usable CUDA device is present.
- `"auto"`: CuPy when usable, else NumPy, logging one INFO line (once per process) that says why.
"""

from __future__ import annotations

import functools
import logging
import warnings
from types import ModuleType
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "gpu")

_fallback_logged = False


class DeviceUnavailableError(RuntimeError):
    """The GPU was asked for explicitly, but CuPy or a usable CUDA device is missing."""


def resolve_device(device: str | None) -> str:
    """The requested device name: `device`, else `"auto"`; ValueError for an unknown name."""
    name = (device or "auto").strip().lower()
    if name not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)}; got {name!r}")
    return name


@functools.cache
def _probe_gpu() -> tuple[ModuleType | None, str]:
    """Import CuPy and check for a CUDA device: (cupy, "") or (None, why not). Cached."""
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            import cupy
    except Exception as exc:  # ImportError, or a broken CUDA install raising at import
        return None, f"CuPy is not importable ({type(exc).__name__}: {exc})"
    for w in caught:
        logger.debug("warning while importing CuPy: %s", w.message)
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDARuntimeError: no driver, no device
        return None, f"CUDA is not usable ({type(exc).__name__}: {exc})"
    if count < 1:
        return None, "no CUDA device is present"
    return cupy, ""


def gpu_status() -> tuple[bool, str]:
    """(True, "") when CuPy and a CUDA device are usable, else (False, why not). Cached."""
    cupy, why_not = _probe_gpu()
    return cupy is not None, why_not


def reset_probe() -> None:
    """Forget the cached GPU probe and the once-per-process fallback log line (for tests)."""
    global _fallback_logged
    _probe_gpu.cache_clear()
    _fallback_logged = False


def array_module(device: str | None = None) -> tuple[ModuleType, str]:
    """`(xp, device_name)` for `device` in auto|cpu|gpu (None: auto).

    `device_name` is `"cpu"` or `"gpu"`: the one actually used.
    """
    global _fallback_logged
    name = resolve_device(device)
    if name == "cpu":
        return np, "cpu"
    cupy, why_not = _probe_gpu()
    if cupy is not None:
        return cupy, "gpu"
    if name == "gpu":
        raise DeviceUnavailableError(
            f"device 'gpu' was requested but {why_not}; install CuPy on a CUDA machine "
            "or use --device cpu / GRIDSHIFT_DEVICE=cpu")
    if not _fallback_logged:
        logger.info("scoring device auto: no usable GPU (%s); using NumPy on the CPU", why_not)
        _fallback_logged = True
    return np, "cpu"


def to_numpy(array: Any) -> np.ndarray:
    """A host NumPy copy/view of a NumPy or CuPy array."""
    if isinstance(array, np.ndarray):
        return array
    get = getattr(array, "get", None)
    return get() if callable(get) else np.asarray(array)

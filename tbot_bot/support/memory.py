"""Handing memory freed by large temporaries back to the system.

A replay of thousands of symbols reads millions of rows; the temporaries are freed, but the allocators keep
them: Arrow's pool caches freed blocks, and glibc keeps freed heap pages (arrays under its adaptive mmap
threshold, which grows to 32 MB, come from the heap) until the heap is trimmed. Without a trim that memory
still counts in the process's resident size for the rest of the day. Dask's workers trim the same way.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from typing import Any

import pyarrow as pa


def _glibc() -> Any:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:  # no C library to load by name: nothing to trim
        return None
    return libc if hasattr(libc, "malloc_trim") else None  # not glibc (macOS, musl): nothing to trim


_LIBC = _glibc()


def give_back_freed_memory() -> None:
    """Return freed memory to the system: Arrow's cached blocks and glibc's free heap pages."""
    pa.default_memory_pool().release_unused()
    if _LIBC is not None:
        _LIBC.malloc_trim(0)

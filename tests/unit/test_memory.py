"""eqi.pipeline.memory: freed C heap goes back to the system (measured in /proc, glibc only)."""

from __future__ import annotations

import platform
import subprocess
import sys
import textwrap

import pytest

_PROGRAM = textwrap.dedent(
    """
    import gc
    import numpy as np

    def rss_mib():
        return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20

    blocks = [np.ones(8192) for _ in range(3200)]  # 64 KiB each (below glibc's mmap threshold): 200 MiB of heap
    keep = np.ones(8192)  # allocated last, it pins the top of the heap: free() alone cannot shrink it
    del blocks
    gc.collect()
    before = rss_mib()
    from eqi.pipeline.memory import release_memory
    release_memory()
    print(before, rss_mib())
    """
)


@pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc's malloc_trim"
)
def test_release_memory_returns_the_freed_heap() -> None:
    out = subprocess.run(
        [sys.executable, "-c", _PROGRAM], capture_output=True, text=True, check=True, timeout=120
    ).stdout
    before, after = map(float, out.split())
    assert before > 150, before  # the freed 200 MiB is still resident after free() and gc
    assert before - after > 150, (before, after)

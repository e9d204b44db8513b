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


_ARENAS = textwrap.dedent(
    """
    import ctypes, os, sys, tempfile, threading
    import numpy as np

    from eqi.pipeline.memory import limit_malloc_arenas

    applied = limit_malloc_arenas() if sys.argv[1] == "limit" else False
    barrier = threading.Barrier(4)

    def work():  # four threads allocating at once: glibc gives each its own arena unless limited
        barrier.wait()
        blocks = [np.ones(4096) for _ in range(200)]
        barrier.wait()
        del blocks

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    libc = ctypes.CDLL("libc.so.6")
    libc.fopen.restype = ctypes.c_void_p
    path = tempfile.mktemp()
    fp = libc.fopen(path.encode(), b"w")
    libc.malloc_info(0, ctypes.c_void_p(fp))
    libc.fclose(ctypes.c_void_p(fp))
    info = open(path).read()
    os.unlink(path)
    print(applied, info.count("<heap nr="))  # glibc's own report: one <heap> per arena
    """
)


@pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc's mallopt"
)
def test_limit_malloc_arenas_makes_threads_share_one_arena() -> None:
    def arenas(mode: str, **env: str) -> tuple[str, int]:
        import os

        out = subprocess.run(
            [sys.executable, "-c", _ARENAS, mode], capture_output=True, text=True, check=True, timeout=120,
            env={k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"} | env,
        ).stdout.split()
        return out[0], int(out[1])

    assert arenas("limit") == ("True", 1)
    applied, n = arenas("default")
    assert applied == "False" and n > 1  # the oracle sees the per-thread arenas without the limit
    assert arenas("limit", MALLOC_ARENA_MAX="3")[0] == "False"  # an explicit environment wins

"""Small untimed measurements that explain the figures: a thread hop, a server woken from idle, httpcore's failed ``import sniffio``.

httpcore asks ``current_async_library()`` whenever it sets up one of its locks, and that
function starts with ``import sniffio``; sniffio is not installed here (anyio 4.16 no longer
needs it), so every call is a failed import that searches every entry of ``sys.path`` again.
"""

from __future__ import annotations

import asyncio
import importlib.abc
import importlib.util
import sys
import time
from collections.abc import Sequence
from typing import Any

import httpx
import raw
from httpcore._synchronization import current_async_library


async def thread_hop_us(n: int = 2000) -> float:
    """Mean µs of ``await asyncio.to_thread(f)`` for a function that does nothing: what each hop to the SQLite thread costs at least."""
    noop = lambda: None  # noqa: E731
    await asyncio.to_thread(noop)
    start = time.perf_counter()
    for _ in range(n):
        await asyncio.to_thread(noop)
    return (time.perf_counter() - start) / n * 1e6


class _Counter(importlib.abc.MetaPathFinder):
    """Counts the searches for one module name and finds nothing itself."""

    def __init__(self, name: str) -> None:
        self.name, self.count = name, 0

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: Any = None) -> None:
        if fullname == self.name:
            self.count += 1


async def sniffio_imports(client: httpx.AsyncClient, url: str, bodies: Sequence[bytes]) -> tuple[float, float, bool]:
    """Failed ``import sniffio`` per request (counted over raw posts of ``bodies``), µs per failed import, and whether it is installed."""
    installed = importlib.util.find_spec("sniffio") is not None
    counter = _Counter("sniffio")
    sys.meta_path.insert(0, counter)
    try:
        for body in bodies:
            await raw.post(client, url, body)
    finally:
        sys.meta_path.remove(counter)
    start = time.perf_counter()
    for _ in range(1000):
        current_async_library()
    return counter.count / max(1, len(bodies)), (time.perf_counter() - start) / 1000 * 1e6, installed


async def idle_penalty_us(client: httpx.AsyncClient, url: str, body: bytes, n: int = 200, idle_s: float = 0.005) -> tuple[float, float]:
    """Median µs of a bare POST right after another, and after ``idle_s`` of nothing (the server and client have gone idle)."""
    hot, cold = [], []
    for _ in range(n):
        start = time.perf_counter_ns()
        await raw.post(client, url, body)
        hot.append(time.perf_counter_ns() - start)
    for _ in range(n):
        await asyncio.sleep(idle_s)
        start = time.perf_counter_ns()
        await raw.post(client, url, body)
        cold.append(time.perf_counter_ns() - start)
    return sorted(hot)[n // 2] / 1e3, sorted(cold)[n // 2] / 1e3

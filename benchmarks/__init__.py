"""
Benchmarks of nylas-async against raw aiohttp, httpx and the official
``nylas`` SDK, run against the fake Nylas in a separate process.

Run the whole suite with ``python -m benchmarks.run``; it writes
``benchmarks/RESULTS.md`` and ``benchmarks/results.png``.
"""

"""
The contenders: one rotation loop per client, each run in a process of
its own so that its CPU time and peak memory are its own.

Every contender sends ``POST /v3/webhooks/rotate-secret/{id}`` for the
first *count* ids of an ids file (cycling through the file when it
holds fewer), with at most *concurrency* requests in flight, and reads
the new secret out of each reply:

- ``aiohttp``: a bare `aiohttp.ClientSession` loop with no retries, no
  models and no request ids: the floor for this stack;
- ``httpx``: the same loop on `httpx.AsyncClient`, its keep-alive pool
  sized to the requests in flight so that it does not reconnect;
- ``single``: nylas-async, one `rotate_secret` task per id behind a
  semaphore;
- ``batch``: nylas-async ``rotate_secrets`` with ids streamed from the
  file, optionally with a journal;
- ``sdk`` and ``sdk16``: the official ``nylas`` SDK, sequentially and
  from 16 threads, through its own HTTP layer and response models (its
  ``rotate_secret`` sends the wrong path, so the documented one is sent
  with ``http_client._execute``).

Run as ``python -m benchmarks._contenders NAME --url URL --ids FILE
--count N --concurrency C``; it prints one JSON object on stdout with
the count, the elapsed time, the user+sys CPU time of the loop (from
`resource.getrusage`, imports left out) and the peak RSS of the
process (``ru_maxrss``, imports included).  A rotation counts as done
only with a non-empty secret in hand.  Every loop is bounded by *count*
and by ``--time-limit`` seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import resource
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

API_KEY = "nyk_bench_key_not_real"
ROTATE = "/v3/webhooks/rotate-secret/"


class Tally:
    """What a contender counts: rotations, requests, 429s, finish times."""

    def __init__(self, keep_times: bool) -> None:
        self.ok = 0
        self.failed = 0
        self.requests = 0
        self.rate_limited = 0
        self.done_at: list[float] | None = [] if keep_times else None

    def done(self, ok: bool, requests: int = 1, limited: int = 0) -> None:
        if ok:
            self.ok += 1
        else:
            self.failed += 1
        self.requests += requests
        self.rate_limited += limited
        if self.done_at is not None:
            self.done_at.append(time.monotonic())


def _read_ids(path: str, count: int) -> list[str]:
    with open(path, encoding="ascii") as file:
        ids = [line.strip() for line in file if line.strip()]

    return [ids[i % len(ids)] for i in range(count)]


def _stream_ids(path: str, count: int) -> Iterator[str]:
    """The first *count* ids of the file, read one line at a time."""
    with open(path, encoding="ascii") as file:
        for number, line in enumerate(file):
            if number >= count:
                return
            yield line.strip()


async def _bounded(
    ids: list[str], concurrency: int, one: Callable[[str], Any]
) -> None:
    gate = asyncio.Semaphore(concurrency)

    async def guarded(webhook_id: str) -> None:
        async with gate:
            await one(webhook_id)

    await asyncio.gather(*(guarded(i) for i in ids))


async def run_aiohttp(args: argparse.Namespace, tally: Tally) -> None:
    import aiohttp

    ids = _read_ids(args.ids, args.count)
    headers = {
        "Authorization": f"Bearer {API_KEY}",
        "Accept": "application/json",
    }
    base = args.url + ROTATE
    async with aiohttp.ClientSession(headers=headers) as session:

        async def one(webhook_id: str) -> None:
            async with session.post(base + webhook_id) as resp:
                body = await resp.read()
                ok = resp.status == 200 and bool(
                    json.loads(body)["data"]["webhook_secret"]
                )
                tally.done(ok, limited=int(resp.status == 429))

        await _bounded(ids, args.concurrency, one)


async def run_httpx(args: argparse.Namespace, tally: Tally) -> None:
    import httpx

    ids = _read_ids(args.ids, args.count)
    headers = {
        "Authorization": f"Bearer {API_KEY}",
        "Accept": "application/json",
    }
    limits = httpx.Limits(
        max_connections=100, max_keepalive_connections=args.concurrency
    )
    async with httpx.AsyncClient(
        base_url=args.url, headers=headers, limits=limits, timeout=30
    ) as client:

        async def one(webhook_id: str) -> None:
            resp = await client.post(ROTATE + webhook_id)
            ok = resp.status_code == 200 and bool(
                resp.json()["data"]["webhook_secret"]
            )
            tally.done(ok, limited=int(resp.status_code == 429))

        await _bounded(ids, args.concurrency, one)


def _client(args: argparse.Namespace) -> Any:
    from nylas_async import Client

    if args.rate_limit == "default":
        return Client(api_key=API_KEY, api_uri=args.url)
    rate = None if args.rate_limit == "none" else float(args.rate_limit)

    return Client(api_key=API_KEY, api_uri=args.url, rate_limit=rate)


async def run_single(args: argparse.Namespace, tally: Tally) -> None:
    from nylas_async import NylasError

    ids = _read_ids(args.ids, args.count)
    async with _client(args) as client:

        async def one(webhook_id: str) -> None:
            try:
                response = await client.webhooks.rotate_secret(webhook_id)
            except NylasError as exc:
                attempts = getattr(exc, "attempts", ())
                tally.done(False, len(attempts), _limited(attempts))
                return
            attempts = response.attempts
            ok = bool(response.data.webhook_secret)
            tally.done(ok, len(attempts), _limited(attempts))

        await _bounded(ids, args.concurrency, one)


def _limited(attempts: Any) -> int:
    """How many of *attempts* were answered 429; cheap for one attempt,
    so that counting costs nylas-async next to nothing."""
    if len(attempts) == 1 and attempts[0].outcome != "429":
        return 0

    return sum(a.outcome == "429" for a in attempts)


async def run_batch(args: argparse.Namespace, tally: Tally) -> None:
    from nylas_async import Outcome, RateLimitedError

    ids = _stream_ids(args.ids, args.count)
    async with _client(args) as client:
        batch = client.webhooks.rotate_secrets(
            ids, concurrency=args.concurrency, journal=args.journal
        )
        async with batch:
            async for outcome in batch:
                limited = outcome.retry_reasons.count("status 429")
                if isinstance(outcome.error, RateLimitedError):
                    limited += 1
                ok = outcome.outcome == Outcome.ROTATED and bool(
                    outcome.webhook_secret
                )
                tally.done(ok, outcome.attempts, limited)


def _sdk_rotate(args: argparse.Namespace) -> Callable[[str], bool]:
    from nylas import Client
    from nylas.models.errors import NylasApiError
    from nylas.models.response import Response
    from nylas.models.webhooks import WebhookWithSecret

    client = Client(API_KEY, api_uri=args.url, timeout=30)

    def one(webhook_id: str) -> bool:
        try:
            res, headers = client.http_client._execute(
                method="POST", path=ROTATE + webhook_id, request_body={}
            )
        except NylasApiError:
            return False
        # The SDK's own Response.from_dict raises KeyError on the
        # documented rotate reply, which has no timestamps; its models
        # decode it only when told to infer the missing fields.
        data = WebhookWithSecret.from_dict(res["data"], infer_missing=True)
        response = Response(data, res["request_id"], headers)

        return bool(response.data.webhook_secret)

    return one


def run_sdk(args: argparse.Namespace, tally: Tally) -> None:
    one = _sdk_rotate(args)
    deadline = time.monotonic() + args.time_limit
    for webhook_id in _read_ids(args.ids, args.count):
        if time.monotonic() > deadline:
            raise TimeoutError("the time limit passed")
        tally.done(one(webhook_id))


def run_sdk_threads(args: argparse.Namespace, tally: Tally) -> None:
    from concurrent.futures import ThreadPoolExecutor

    one = _sdk_rotate(args)
    deadline = time.monotonic() + args.time_limit

    def bounded(webhook_id: str) -> bool:
        if time.monotonic() > deadline:
            raise TimeoutError("the time limit passed")
        return one(webhook_id)

    ids = _read_ids(args.ids, args.count)
    with ThreadPoolExecutor(args.threads) as pool:
        for ok in pool.map(bounded, ids):
            tally.done(ok)


ASYNC: dict[str, Callable[[argparse.Namespace, Tally], Any]] = {
    "aiohttp": run_aiohttp,
    "httpx": run_httpx,
    "single": run_single,
    "batch": run_batch,
}
SYNC: dict[str, Callable[[argparse.Namespace, Tally], None]] = {
    "sdk": run_sdk,
    "sdk16": run_sdk_threads,
}


def _cpu() -> float:
    """User+sys CPU seconds of this process so far, every thread."""
    usage = resource.getrusage(resource.RUSAGE_SELF)

    return usage.ru_utime + usage.ru_stime


#: What each contender imports, done before the clock starts.
IMPORTS: dict[str, tuple[str, ...]] = {
    "aiohttp": ("aiohttp",),
    "httpx": ("httpx",),
    "single": ("nylas_async",),
    "batch": ("nylas_async",),
    "sdk": (
        "nylas",
        "nylas.models.errors",
        "nylas.models.response",
        "nylas.models.webhooks",
    ),
}
IMPORTS["sdk16"] = (*IMPORTS["sdk"], "concurrent.futures")


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Run one contender and return what it measured."""
    for module in IMPORTS[args.name]:
        importlib.import_module(module)
    tally = Tally(args.times)
    before, start = _cpu(), time.perf_counter()
    started = time.monotonic()
    if args.name in ASYNC:

        async def bounded() -> None:
            async with asyncio.timeout(args.time_limit):
                await ASYNC[args.name](args, tally)

        asyncio.run(bounded())
    else:
        SYNC[args.name](args, tally)
    elapsed = time.perf_counter() - start
    cpu = _cpu() - before
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    result: dict[str, Any] = {
        "name": args.name,
        "count": tally.ok + tally.failed,
        "ok": tally.ok,
        "failed": tally.failed,
        "requests": tally.requests,
        "rate_limited": tally.rate_limited,
        "elapsed": elapsed,
        "cpu": cpu,
        "peak_rss_kib": peak,
    }
    if tally.done_at is not None:
        result["done_at"] = [t - started for t in tally.done_at]

    return result


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("name", choices=sorted(ASYNC) + sorted(SYNC))
    parser.add_argument("--url", required=True)
    parser.add_argument("--ids", required=True, help="a file, an id a line")
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--journal", default=None)
    parser.add_argument(
        "--rate-limit",
        default="none",
        help="nylas-async's rate_limit: a number, none or default",
    )
    parser.add_argument("--time-limit", type=float, default=60.0)
    parser.add_argument(
        "--times", action="store_true", help="report each finish time"
    )
    args = parser.parse_args(argv)
    if not args.url.startswith("http://127.0.0.1:"):
        parser.error("benchmarks talk to 127.0.0.1 only")

    return args


def main(argv: list[str] | None = None) -> None:
    args = parse(sys.argv[1:] if argv is None else argv)
    json.dump(measure(args), sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()

"""
Turning measures into ``RESULTS.md`` and ``results.png``: the tables,
the goals of issue 5 with whether each is met, and the chart.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ._harness import Pairs, Spread

LABELS = {
    "single": "nylas-async single calls",
    "batch": "nylas-async batch",
    "aiohttp": "raw aiohttp loop",
    "httpx": "httpx.AsyncClient",
    "sdk": "nylas SDK, sequential",
    "sdk16": "nylas SDK, 16 threads",
}


SHORT = {
    "single": "nylas-async\nsingle calls",
    "batch": "nylas-async\nbatch",
    "aiohttp": "raw\naiohttp",
    "httpx": "httpx",
    "sdk": "nylas SDK\nsequential",
    "sdk16": "nylas SDK\n16 threads",
}


@dataclass
class Goal:
    """One goal of the issue, what was measured, and whether it holds."""

    text: str
    measured: str
    met: bool | None

    @property
    def verdict(self) -> str:
        if self.met is None:
            return "not measured"
        return "met" if self.met else "**not met**"


def _spread(s: Spread, digits: int = 2) -> str:
    return f"{s.median:.{digits}f} ({s.low:.{digits}f}-{s.high:.{digits}f})"


def contender_runs(pairs: Iterable[Pairs]) -> dict[str, list[dict[str, Any]]]:
    """Every run of each contender, over all the pairs it was in."""
    runs: dict[str, list[dict[str, Any]]] = {}
    for p in pairs:
        for ra, rb in p.runs:
            runs.setdefault(p.a, []).append(ra)
            runs.setdefault(p.b, []).append(rb)

    return runs


def per_contender(pairs: list[Pairs]) -> dict[str, dict[str, Any]]:
    """Throughput and CPU per rotation of each contender, all runs."""
    found = {}
    for name, runs in contender_runs(pairs).items():
        cpu = [r["cpu_per"] for r in runs]
        found[name] = {
            "runs": len(runs),
            "count": runs[0]["count"],
            "throughput": Spread.of([r["throughput"] for r in runs]),
            "cpu_per": Spread.of(cpu),
            "peak_rss": statistics.median(r["peak_rss_kib"] for r in runs),
        }

    return found


def _find(pairs: list[Pairs], a: str, b: str) -> Pairs | None:
    return next((p for p in pairs if (p.a, p.b) == (a, b)), None)


def _tell(ratio: Spread, calibration: Spread | None) -> str:
    if calibration is None:
        return "no A/A run"
    if ratio.within(calibration):
        return "cannot be told from 1"
    return "distinct from 1"


def goals(results: dict[str, Any]) -> list[Goal]:
    """Evaluate every goal of the issue on *results*."""
    found: list[Goal] = []
    throughput = results.get("throughput")
    pairs: list[Pairs] = throughput["pairs"] if throughput else []
    for ours in ("single", "batch"):
        label = LABELS[ours]
        vs_raw = _find(pairs, ours, "aiohttp")
        vs_sdk = _find(pairs, ours, "sdk16")
        if vs_raw is None:
            found.append(Goal(f"{label}: vs raw aiohttp", "-", None))
        else:
            cpu = vs_raw.ratio("cpu_per")
            rate = vs_raw.ratio("throughput")
            found.append(
                Goal(
                    f"{label}: CPU per rotation <= 1.25 x raw aiohttp",
                    f"{_spread(cpu)} x",
                    cpu.median <= 1.25,
                )
            )
            found.append(
                Goal(
                    f"{label}: throughput >= 0.85 x raw aiohttp",
                    f"{_spread(rate)} x",
                    rate.median >= 0.85,
                )
            )
        if vs_sdk is not None:
            rate = vs_sdk.ratio("throughput")
            found.append(
                Goal(
                    f"{label}: throughput >= 8 x nylas SDK, 16 threads",
                    f"{_spread(rate, 1)} x",
                    rate.median >= 8,
                )
            )

    latency = results.get("latency")
    if latency:
        p = latency["pairs"]
        label = LABELS[p.a]
        time = p.ratio("elapsed")
        ideal = Spread.of(
            [ra["elapsed"] / latency["ideal"] for ra, _ in p.runs]
        )
        found.append(
            Goal(
                f"latency-bound {label}: time <= 1.05 x raw aiohttp",
                f"{_spread(time, 3)} x",
                time.median <= 1.05,
            )
        )
        found.append(
            Goal(
                f"latency-bound {label}: time <= 1.15 x ideal",
                f"{_spread(ideal, 3)} x",
                ideal.median <= 1.15,
            )
        )

    memory = results.get("memory")
    if memory:
        small, large = sorted(memory["runs"])
        ratio = (
            memory["runs"][large]["peak_rss_kib"]
            / memory["runs"][small]["peak_rss_kib"]
        )
        found.append(
            Goal(
                f"peak RSS at {large:,} ids <= 1.2 x at {small:,}",
                f"{ratio:.3f} x",
                ratio <= 1.2,
            )
        )

    pacing = results.get("pacing")
    if pacing:
        runs = [r for r in pacing["runs"] if r["name"] == "batch"]
        if runs:
            limit = pacing["limit"]
            shares = [(r["sustained"] or 0.0) / limit for r in runs]
            share = statistics.median(shares)
            limited = max(r["share_429"] for r in runs)
            found.append(
                Goal(
                    f"paced batch >= 90 % of {limit:g}/s, < 2 % answered 429",
                    f"{share:.1%} of {limit:g}/s (runs: "
                    + ", ".join(f"{s:.1%}" for s in shares)
                    + f"); at most {limited:.2%} answered 429",
                    share >= 0.9 and limited < 0.02,
                )
            )

    return found


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows]

    return [*lines, ""]


def _throughput(section: dict[str, Any]) -> list[str]:
    pairs: list[Pairs] = section["pairs"]
    stats = per_contender(pairs)
    aa = _find(pairs, "single", "single")
    aa_rate = aa.ratio("throughput") if aa else None
    aa_cpu = aa.ratio("cpu_per") if aa else None

    lines = [
        "## 1. Throughput and client CPU per rotation",
        "",
        f"{section['concurrency']} rotations in flight, fake without "
        "latency or rate limit.  Rates and CPU are medians over every "
        "run of a contender (range in brackets); CPU per rotation also "
        "gives the minimum, the least disturbed run.",
        "",
    ]
    rows = []
    for name in (n for n in LABELS if n in stats):
        s = stats[name]
        rows.append(
            [
                LABELS[name],
                f"{s['count']:,} x {s['runs']}",
                f"{s['throughput'].median:,.0f} "
                f"({s['throughput'].low:,.0f}-{s['throughput'].high:,.0f})",
                f"{s['cpu_per'].median * 1e6:,.0f}",
                f"{s['cpu_per'].low * 1e6:,.0f}",
                f"{s['peak_rss'] / 1024:.1f}",
            ]
        )
    lines += _table(
        [
            "contender",
            "rotations x runs",
            "rotations/s",
            "CPU us/rotation (median)",
            "CPU us/rotation (min)",
            "peak RSS MiB",
        ],
        rows,
    )

    lines += [
        "Ratios within each pair (a over b), median and range over the "
        f"{len(pairs[0].runs)} pairs; a median inside the A/A range "
        "cannot be told from 1.",
        "",
    ]
    rows = []
    for p in pairs:
        rate, cpu = p.ratio("throughput"), p.ratio("cpu_per")
        mins = min(r["cpu_per"] for r, _ in p.runs) / min(
            r["cpu_per"] for _, r in p.runs
        )
        rows.append(
            [
                f"{LABELS[p.a]} / {LABELS[p.b]}",
                f"{_spread(rate)} ({_tell(rate, aa_rate)})",
                f"{_spread(cpu)} ({_tell(cpu, aa_cpu)})",
                f"{mins:.2f}",
            ]
        )
    lines += _table(
        [
            "pair",
            "throughput ratio",
            "CPU per rotation ratio",
            "ratio of CPU minimums",
        ],
        rows,
    )
    if aa_rate is not None and aa_cpu is not None:
        lines += [
            f"A/A calibration (nylas-async single calls against "
            f"themselves): throughput ratios {aa_rate.low:.2f}-"
            f"{aa_rate.high:.2f}, CPU ratios {aa_cpu.low:.2f}-"
            f"{aa_cpu.high:.2f}.",
            "",
        ]

    return lines


def _latency(section: dict[str, Any]) -> list[str]:
    p: Pairs = section["pairs"]
    ideal = section["ideal"]
    rows = []
    for name, index in ((p.a, 0), (p.b, 1)):
        elapsed = Spread.of([pair[index]["elapsed"] for pair in p.runs])
        rows.append(
            [
                LABELS[name],
                _spread(elapsed, 3),
                f"{elapsed.median / ideal:.3f}",
                f"{statistics.median(pr[index]['cpu'] for pr in p.runs):.2f}",
            ]
        )
    ratio = p.ratio("elapsed")

    return [
        "## 2. Latency-bound batch",
        "",
        f"{section['count']:,} ids, {section['concurrency']} in flight, "
        f"the fake adds {section['latency'] * 1e3:.0f} ms to every "
        f"reply: ideal {ideal:.2f} s.  {len(p.runs)} alternating pairs.",
        "",
        *_table(["contender", "elapsed s", "x ideal", "CPU s (median)"], rows),
        f"Time ratio {LABELS[p.a]} / {LABELS[p.b]} within pairs: "
        f"{_spread(ratio, 3)}.",
        "",
    ]


def _memory(section: dict[str, Any]) -> list[str]:
    rows = []
    for count, r in sorted(section["runs"].items()):
        rows.append(
            [
                f"{count:,}",
                f"{r['peak_rss_kib'] / 1024:.1f}",
                f"{r['ok']:,}",
                f"{r['throughput']:,.0f}",
                f"{r['cpu_per'] * 1e6:,.0f}",
            ]
        )

    return [
        "## 3. Memory of a batch",
        "",
        f"nylas-async batch, ids streamed from a file, journal on, "
        f"{section['concurrency']} in flight; one run per size.",
        "",
        *_table(
            [
                "ids",
                "peak RSS MiB",
                "rotated",
                "rotations/s",
                "CPU us/rotation",
            ],
            rows,
        ),
    ]


def _pacing(section: dict[str, Any]) -> list[str]:
    limit = section["limit"]
    rows = []
    for r in section["runs"]:
        sustained = r["sustained"]
        rows.append(
            [
                LABELS[r["name"]],
                f"{r['count']:,}",
                f"{sustained:.1f}" if sustained else "-",
                f"{sustained / limit:.1%}" if sustained else "-",
                f"{r['throughput']:.1f}",
                f"{r['rate_limited']} of {r['requests']} "
                f"({r['share_429']:.2%})",
            ]
        )

    return [
        "## 4. Pacing against an enforced limit",
        "",
        f"The fake admits {limit:g} requests/s and answers 429 above; "
        "the client keeps its default `rate_limit`.  Sustained: "
        "rotations finished after the first second over the time they "
        "took.  Overall includes any burst at the start.",
        "",
        *_table(
            [
                "contender",
                "rotations",
                "sustained /s",
                f"share of {limit:g}/s",
                "overall /s",
                "answered 429",
            ],
            rows,
        ),
    ]


def _imports(section: dict[str, Any]) -> list[str]:
    rows = [
        [f"`import {m}`", _spread(Spread.of([t * 1e3 for t in s.values]), 0)]
        for m, s in section["times"].items()
    ]
    ratio = section["ratio"]

    return [
        "## 5. Import time",
        "",
        "Cumulative time of the top-level module under "
        "`python -X importtime`, fresh interpreter each time, median "
        "(range) in ms.",
        "",
        *_table(["import", "ms"], rows),
        f"nylas_async / aiohttp within rounds: {_spread(ratio)} "
        "(nylas_async imports aiohttp).",
        "",
    ]


def _instructions(section: dict[str, Any]) -> list[str]:
    per = section["per_rotation"]
    base = per.get("aiohttp")
    rows = [
        [
            LABELS[name],
            f"{value / 1e3:,.0f}",
            f"{value / base:.2f}" if base else "-",
        ]
        for name, value in per.items()
    ]
    low, high = section["counts"]

    return [
        "## 6. Instructions per rotation (valgrind)",
        "",
        "User-space instructions of the client process under callgrind, "
        f"the difference between {high:,} and {low:,} rotations over "
        f"{high - low:,}; load on the machine cannot move these.  The "
        "client runs far slower under valgrind, so the event loop "
        "handles more events per turn than at full speed, and system "
        "time and cache misses are not counted.",
        "",
        *_table(["contender", "k instructions", "x raw aiohttp"], rows),
    ]


def render(
    results: dict[str, Any],
    header: list[str],
    notes: list[str],
    analysis: list[str] | None = None,
) -> str:
    """The text of ``RESULTS.md``."""
    lines = ["# Benchmark results", "", *header, ""]
    found = goals(results)
    if found:
        lines += ["## Goals (issue 5)", ""]
        lines += _table(
            ["goal", "measured: median (range) of ratios", "verdict"],
            [[g.text, g.measured, g.verdict] for g in found],
        )
    sections = {
        "throughput": _throughput,
        "latency": _latency,
        "memory": _memory,
        "pacing": _pacing,
        "imports": _imports,
        "instructions": _instructions,
    }
    for key, make in sections.items():
        if results.get(key):
            lines += make(results[key])
    if notes:
        lines += ["## Notes", "", *notes, ""]
    if analysis:
        lines += [*analysis, ""]

    return "\n".join(lines).rstrip() + "\n"


def chart(results: dict[str, Any], path: str) -> None:
    """Draw throughput and CPU per rotation by contender into *path*."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stats = per_contender(results["throughput"]["pairs"])
    names = [n for n in LABELS if n in stats]
    labels = [SHORT[n] for n in names]
    colours = [
        "tab:blue" if n in ("single", "batch") else "tab:grey" for n in names
    ]

    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
    rate = [stats[n]["throughput"] for n in names]
    left.bar(
        labels,
        [s.median for s in rate],
        yerr=[
            [s.median - s.low for s in rate],
            [s.high - s.median for s in rate],
        ],
        color=colours,
        capsize=4,
    )
    for x, s in zip(labels, rate, strict=True):
        left.annotate(
            f"{s.median:,.0f}", (x, s.high), ha="center", va="bottom"
        )
    left.set_title("Throughput (rotations/s, median and range)")
    left.set_ylabel("rotations per second")

    cpu = [stats[n]["cpu_per"] for n in names]
    right.bar(labels, [s.median * 1e6 for s in cpu], color=colours)
    right.scatter(
        labels,
        [s.low * 1e6 for s in cpu],
        color="black",
        marker="_",
        s=300,
        label="minimum",
        zorder=3,
    )
    for x, s in zip(labels, cpu, strict=True):
        text = f"{s.median * 1e6:,.0f}"
        right.annotate(text, (x, s.median * 1e6), ha="center", va="bottom")
    right.set_title("Client CPU per rotation (us: bar median, dash minimum)")
    right.set_ylabel("microseconds of user+sys CPU")
    right.set_yscale("log")
    right.legend()
    for axis in (left, right):
        axis.tick_params(axis="x", labelsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)

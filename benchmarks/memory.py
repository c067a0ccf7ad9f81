"""Where a `clv` command's memory goes: a timeline of resident memory and who holds it.

``python benchmarks/memory.py --out trace.tsv -- train --transactions big.parquet`` runs
``clv ARGS`` in this process (the real entry point, so the ``clv`` process defaults apply) while a
thread samples, every ``--every`` seconds: the resident set (``VmRSS``), glibc's heap in use and
free and its mmapped blocks (``mallinfo2``; numpy's large arrays live there), the bytes Arrow's
pool holds live (frames built from DuckDB results, text ids), and the innermost clv frames of
the main thread's stack. It writes the timeline as TSV and prints the highest samples and the
high point of each stage (the clv function the main line was in). The 2026-12-05 rounds of
docs/benchmarks/performance.md ("Logs larger than memory") were measured with it. Linux only
(``/proc``, glibc).
"""

from __future__ import annotations

import argparse
import ctypes
import os
import sys
import threading
import time
import traceback
from collections import defaultdict


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def _rss_gb() -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) / 1e6 for line in status if line.startswith("VmRSS"))


def _heap() -> tuple[float, float, float]:
    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = _MallInfo2
    info = libc.mallinfo2()
    return info.uordblks / 1e9, info.fordblks / 1e9, info.hblkhd / 1e9


def _arrow_gb() -> float:
    total = getattr(sys.modules.get("pyarrow"), "total_allocated_bytes", None)  # once loaded
    return total() / 1e9 if total is not None else 0.0


#: Functions whose callees are the stages of a command (the training's and the scorecard's).
STAGE_OWNERS = ("_train", "_evaluate", "build_report")


def _stack(thread_id: int) -> tuple[str, list[str]]:
    """The stage (the clv call inside the innermost of :data:`STAGE_OWNERS`, or that owner when
    its own line runs; else the outermost clv call) and the five innermost clv frames."""
    frame = sys._current_frames().get(thread_id)
    stack = traceback.extract_stack(frame) if frame is not None else []
    clv = [f for f in stack if f"{os.sep}clv{os.sep}" in f.filename]
    names = [f"{os.path.basename(f.filename)}:{f.name}" for f in clv]
    owners = [i for i, f in enumerate(clv) if f.name in STAGE_OWNERS]
    if owners:  # the owner itself when its own line runs
        stage = names[min(owners[-1] + 1, len(names) - 1)]
    else:
        stage = names[0] if names else "(outside clv)"
    return stage, [f"{n}:{f.lineno}" for n, f in zip(names[-5:], clv[-5:], strict=True)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="memory.tsv", help="timeline (TSV)")
    parser.add_argument("--every", type=float, default=0.25, help="seconds between samples")
    parser.add_argument("--top", type=int, default=10, help="highest samples to print")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="the clv command, after --")
    options = parser.parse_args()
    args = [a for a in options.args if a != "--"] or ["--help"]

    main_id = threading.main_thread().ident
    samples: list[tuple[float, float, float, float, float, float, str, list[str]]] = []
    start = time.perf_counter()

    def sample() -> None:
        while True:
            try:  # a frame torn down while it is read costs one sample, not the timeline
                in_use, free, mapped = _heap()
                at = time.perf_counter() - start
                stage, stack = _stack(main_id)
                samples.append((at, _rss_gb(), in_use, free, mapped, _arrow_gb(), stage, stack))
            except Exception as exc:
                print(f"sample skipped: {exc!r}", file=sys.stderr)
            time.sleep(options.every)

    threading.Thread(target=sample, daemon=True).start()
    from clv.cli import main as clv_main

    sys.argv = ["clv", *args]
    try:
        clv_main()
    except SystemExit:
        pass
    finally:
        _report(samples, options.out, options.top, options.every)


def _report(samples: list, out: str, top: int, every: float) -> None:
    with open(out, "w") as timeline:
        timeline.write(
            "seconds\trss_gb\theap_in_use_gb\theap_free_gb\tmmap_gb\tarrow_gb\tstage\tstack\n"
        )
        for at, rss, in_use, free, mapped, arrow, stage, stack in samples:
            numbers = f"{at:.2f}\t{rss:.3f}\t{in_use:.3f}\t{free:.3f}\t{mapped:.3f}\t{arrow:.3f}"
            timeline.write(f"{numbers}\t{stage}\t{' > '.join(stack)}\n")
    print(f"\n{len(samples)} samples in {out}; highest:", file=sys.stderr)
    highest = sorted(samples, key=lambda sampled: -sampled[1])[:top]
    for at, rss, in_use, free, mapped, arrow, _, stack in highest:
        print(
            f"{at:7.1f} s {rss:5.2f} GB (heap {in_use:.2f} + {free:.2f} free, mmap {mapped:.2f},"
            f" arrow {arrow:.2f}) {' > '.join(stack[-3:])}",
            file=sys.stderr,
        )
    stages: dict[str, list[float]] = defaultdict(list)
    for sampled in samples:
        stages[sampled[6]].append(sampled[1])
    print("\nby stage: high point, seconds sampled", file=sys.stderr)
    for name, values in sorted(stages.items(), key=lambda item: -max(item[1])):
        print(f"  {max(values):5.2f} GB {len(values) * every:7.1f} s  {name}", file=sys.stderr)


if __name__ == "__main__":
    main()

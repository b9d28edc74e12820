"""First writes to new memory, with and without the worker's memory reserve, side by side.

A live stream's buffers grow as its call goes on. On a virtual machine whose host takes
back the guest's free pages, the first write to a page the process has not used yet
costs a fault on the host; the reserve (``api/memory.py``, ``CALLSIFT_MEMORY_RESERVE_MB``)
writes memory once at start and the allocator keeps it for later arrays.

Each round runs two fresh processes, one after the other: both allocate and fill
``--arrays`` arrays of 8 MB (as a stream's buffers, through numpy), one after a reserve
of that size. Rounds alternate the order; the table gives each round's times and the
ratio. Runs are ``--pause`` seconds apart: the guest reports freed pages to the host
about 2 s after they are freed, and until then a new process reuses the last one's.

    .venv/bin/python bench/bench_memory.py [--arrays 60] [--rounds 5] [--pause 5]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

_CHILD = """
import json, sys, time
import numpy as np
from api.memory import reserve_memory
n, mb = int(sys.argv[1]), int(sys.argv[2])
reserve = reserve_memory(mb)
t0 = time.perf_counter()
arrays = [np.full(2 * 1024 * 1024, 1.0, np.float32) for _ in range(n)]
print(json.dumps({"fill_s": time.perf_counter() - t0,
                  "reserve_s": reserve.seconds if reserve else 0.0}))
"""


def _run(n: int, mb: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(n), str(mb)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return dict(json.loads(out.stdout))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--arrays", type=int, default=60, help="arrays of 8 MB each")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--pause", type=float, default=5.0, help="seconds between runs")
    args = ap.parse_args()
    mb = args.arrays * 8 + 16
    print(f"{args.arrays} arrays of 8 MB ({args.arrays * 8} MB), reserve {mb} MB")
    print("| round | no reserve: fill s | reserve: fill s | ratio | reserve itself s |")
    print("|---|---|---|---|---|")
    ratios = []
    for r in range(args.rounds):
        order = [0, mb] if r % 2 == 0 else [mb, 0]
        got = {}
        for m in order:
            time.sleep(args.pause)
            got[m] = _run(args.arrays, m)
        plain, kept = got[0], got[mb]
        ratios.append(plain["fill_s"] / kept["fill_s"])
        print(
            f"| {r + 1} | {plain['fill_s']:.3f} | {kept['fill_s']:.3f} | {ratios[-1]:.0f}x "
            f"| {kept['reserve_s']:.3f} |"
        )
    print(f"median ratio {np.median(ratios):.0f}x")


if __name__ == "__main__":
    main()

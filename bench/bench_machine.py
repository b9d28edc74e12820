"""How often plain numpy work pauses on this machine, with no server running.

The control for ``bench_stream.py``'s loop stalls: ``--processes`` processes each run
work units (a sort and an FFT of 20,000 values, four times: about 2-5 ms) with 2 ms of
sleep between them for ``--seconds``, and count the units that took over 100 ms. None
on a machine whose cores are not taken away.

    .venv/bin/python bench/bench_machine.py [--processes 2] [--seconds 60]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

_CHILD = """
import json, sys, time
import numpy as np
x = np.random.default_rng(0).standard_normal(20000)
durations = []
end = time.monotonic() + float(sys.argv[1])
while time.monotonic() < end:
    t0 = time.perf_counter()
    for _ in range(4):
        np.sort(x)
        np.fft.rfft(x)
    durations.append(time.perf_counter() - t0)
    time.sleep(0.002)
d = np.array(durations) * 1000
print(json.dumps({"units": int(d.size), "p50": float(np.median(d)),
                  "p99": float(np.percentile(d, 99)), "max": float(d.max()),
                  "over_100": int((d > 100).sum())}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=60.0)
    args = ap.parse_args()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(args.seconds)], stdout=subprocess.PIPE, text=True
        )
        for _ in range(args.processes)
    ]
    print("| process | units | p50 ms | p99 ms | max ms | units over 100 ms |")
    print("|---|---|---|---|---|---|")
    for i, p in enumerate(procs, 1):
        out, _ = p.communicate()
        r = json.loads(out)
        print(
            f"| {i} | {r['units']} | {r['p50']:.2f} | {r['p99']:.2f} | {r['max']:.0f} "
            f"| {r['over_100']} |"
        )


if __name__ == "__main__":
    main()

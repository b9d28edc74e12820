"""The worker's memory reserve: written once, kept, and reused by later arrays."""

from __future__ import annotations

import json
import platform
import subprocess
import sys

import pytest
from pydantic import ValidationError

from api.memory import MAX_RESERVE_MB, reserve_memory
from api.settings import Settings

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"

# Run in a fresh interpreter: the allocator settings are process-wide and the
# resident size of a pytest worker says nothing.
_PROBE = """
import json, sys
import numpy as np
from api.memory import reserve_memory

def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20

mb = int(sys.argv[1])
start = rss_mb()
reserve = reserve_memory(mb) if mb else None
reserved = rss_mb()
arrays = [np.full(1_000_000, 1.0, np.float32) for _ in range(12)]  # 48 MB, 4 MB each
print(json.dumps({"start": start, "reserved": reserved, "after": rss_mb(),
                  "mb": reserve.mb if reserve else 0}))
"""


def _probe(mb: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, str(mb)], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)


@pytest.mark.skipif(not GLIBC, reason="the reserve needs Linux with glibc")
def test_reserved_memory_stays_resident_and_new_arrays_reuse_it() -> None:
    kept = _probe(96)
    assert kept["mb"] == 96
    # Freed back to the allocator, not to the system: still resident.
    assert kept["reserved"] - kept["start"] >= 90
    # 48 MB of new arrays fit in the reserve: the process barely grows.
    assert kept["after"] - kept["reserved"] < 8

    control = _probe(0)
    assert control["after"] - control["reserved"] >= 40


def test_reserve_outside_its_range_is_refused_with_the_range() -> None:
    with pytest.raises(ValueError, match=rf"-1 MB; expected 0 to {MAX_RESERVE_MB}"):
        reserve_memory(-1)
    with pytest.raises(ValidationError, match="memory_reserve_mb"):
        Settings(memory_reserve_mb=MAX_RESERVE_MB + 1)

"""Session set-up shared by every test layer."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    # In the controller only (xdist workers have workerinput): numba kernels compiled and
    # cached on disk once, before the workers start; workers writing the same cache at
    # once crashed with a segmentation fault in a fresh checkout.
    if not hasattr(config, "workerinput"):
        from classifier.streaming import warm_up

        warm_up()

"""The worker supervisor of ``callsift serve --workers N``.

uvicorn's supervisor pings each worker every half second and kills one that does not
answer within 5 s, then starts another. A worker that is still starting (importing,
loading the model, warming up) on a busy machine may miss that ping and is killed and
restarted over and over; a worker that crashes while starting (a broken model, a bad
setting) is restarted forever. This one differs in two ways only:

- a worker that has not yet reported ready is given ``startup_timeout_s`` instead of the
  ping's 5 s;
- a worker that fails, or is not ready in time, before it ever served stops the server
  with the reason, since its replacement would fail the same way (one killed from
  outside while starting, by SIGKILL or SIGTERM, is replaced, up to
  :data:`MAX_KILLED_STARTING` times). A worker that dies after it served is replaced, as
  uvicorn does.
"""

from __future__ import annotations

import logging
import signal
import socket
import time

from uvicorn.config import Config
from uvicorn.supervisors.multiprocess import Multiprocess, Process

logger = logging.getLogger("uvicorn.error")
#: Starting workers killed from outside that are replaced before the server gives up.
MAX_KILLED_STARTING = 3


def exit_reason(exitcode: int | None) -> str:
    """``exit code 1``, ``killed by SIGSEGV`` or ``still running`` for a process."""
    if exitcode is None:
        return "still running"
    if exitcode < 0:
        try:
            return f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exit code {exitcode}"


class Supervisor(Multiprocess):
    """uvicorn's :class:`~uvicorn.supervisors.multiprocess.Multiprocess` with a start-up
    grace period and no restart of workers that never started.

    Parameters
    ----------
    config : uvicorn.Config
    sockets : list of socket.socket
        The bound listening socket(s), shared by the workers.
    startup_timeout_s : float, keyword-only
        How long a worker may take from its start until it reports ready.

    Attributes
    ----------
    failure : str or None
        Why the server stopped, when a worker failed to start.
    """

    def __init__(
        self, config: Config, sockets: list[socket.socket], *, startup_timeout_s: float
    ) -> None:
        super().__init__(config, sockets)
        self.startup_timeout_s = startup_timeout_s
        self.failure: str | None = None
        self._starting: dict[int, float] = {}  # id(process) -> monotonic start time
        self._pinged: set[int] = set()  # starting workers with a ping not yet answered
        self._killed_starting = 0

    def _start(self, process: Process) -> Process:
        process.start()
        self._starting[id(process)] = time.monotonic()
        return process

    def init_processes(self) -> None:
        for _ in range(self.processes_num):
            self.processes.append(self._start(Process(self.config, self.sockets)))

    def _fail(self, process: Process, why: str) -> None:
        self.failure = f"worker [{process.pid}] {why} before it was ready; stopping the server"
        logger.error(self.failure)
        self.should_exit.set()

    def _reported_ready(self, process: Process) -> bool:
        """Whether the worker has answered a health ping with "started", without waiting.

        One ping at a time, its answer read when it has come: uvicorn's blocking ping
        with a 1 s wait reads, on a busy machine, the answer to an earlier ping (a
        worker long started still "not started"), and one killed then looked like a
        worker that never started.
        """
        key = id(process)
        try:
            if key not in self._pinged:
                process.parent_conn.send(b"ping")
                self._pinged.add(key)
            if not process.parent_conn.poll(0):
                return False
            self._pinged.discard(key)
            return bool(process.parent_conn.recv())
        except (OSError, EOFError):
            return False

    def keep_subprocess_alive(self) -> None:
        if self.should_exit.is_set():
            return
        for idx, process in enumerate(self.processes):
            born = self._starting.get(id(process))
            if born is not None:
                if not process.process.is_alive():
                    process.join()
                    killed = process.exitcode in (-signal.SIGKILL, -signal.SIGTERM)
                    if killed and self._killed_starting < MAX_KILLED_STARTING:
                        # Killed from outside (an operator, the out-of-memory killer), not
                        # failed: another may well start. A crash or an error exit would
                        # only repeat.
                        self._killed_starting += 1
                        logger.warning(
                            "worker [%s] was %s while starting; starting another",
                            process.pid,
                            exit_reason(process.exitcode),
                        )
                        self.processes[idx] = self._start(Process(self.config, self.sockets))
                        continue
                    self._fail(process, f"stopped ({exit_reason(process.exitcode)})")
                    return
                if self._reported_ready(process):
                    del self._starting[id(process)]
                    logger.info("worker [%s] ready", process.pid)
                elif time.monotonic() - born > self.startup_timeout_s:
                    process.kill()
                    process.join()
                    self._fail(process, f"was not ready in {self.startup_timeout_s:.0f} s")
                    return
                continue
            if process.is_alive(timeout=self.config.timeout_worker_healthcheck):
                continue
            process.kill()  # hung or dead after it served: replace it
            process.join()
            if self.should_exit.is_set():
                return
            logger.warning(
                "worker [%s] stopped (%s); starting another",
                process.pid,
                exit_reason(process.exitcode),
            )
            self.processes[idx] = self._start(Process(self.config, self.sockets))

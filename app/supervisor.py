"""Serving processes with a listening socket each, kept running by the parent process.

uvicorn's own workers share one listening socket, and the first worker to wake accepts every
connection waiting: 32 connections opened together split 6/26 and 11/21 between two workers,
one saturated while the other idled. Here each worker listens on its own `SO_REUSEPORT` socket
on the same address, and the kernel hashes each new connection to one of them, as nginx's
`listen ... reuseport` does.

The parent binds the address first (without listening, so it is handed no connection): a port
already in use fails before any worker starts, and the port stays reserved while a worker is
replaced. A worker that dies is started again; one that could not start stops the service
(every worker would fail the same way). SIGINT or SIGTERM to the parent is passed to every
worker as SIGTERM, and each drains its requests in flight before it exits.

With a drain time, SIGTERM first turns `/readyz` to 503 and the process goes on serving for
that long before it closes its listening socket: a load balancer without retries (a Kubernetes
Service) routes new connections to a stopping pod until its readiness or endpoint removal has
propagated, and every connection refused in that window is a failed request.

NOTE: each socket has its own accept queue, so connections a worker had not yet accepted when
it dies are reset rather than taken by another worker; Linux's `net.ipv4.tcp_migrate_req=1`
hands them over instead.
"""

import contextlib
import logging
import multiprocessing
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable, Mapping
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any, Final

import uvicorn
from uvicorn.config import STARTUP_FAILURE

from app.core.draining import start_draining

log = logging.getLogger(__name__)

__all__ = [
    "STARTUP_FAILURE",
    "DrainingServer",
    "Supervisor",
    "reuse_port_socket",
    "run_worker",
    "serve_processes",
]
_CHECK_EVERY_S: Final = 0.5
_STOP_SIGNALS: Final = (signal.SIGINT, signal.SIGTERM)


def reuse_port_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to `host:port` that other `SO_REUSEPORT` sockets may share."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


class DrainingServer(uvicorn.Server):
    """uvicorn's server, which on SIGTERM first drains for `drain_s`: not ready, still serving."""

    def __init__(self, config: uvicorn.Config, *, drain_s: float = 0.0) -> None:
        super().__init__(config)
        self.drain_s = drain_s
        self._drain: threading.Timer | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """Start the drain on the first SIGTERM; any other signal (or a second) stops now."""
        if sig != signal.SIGTERM or self.drain_s <= 0 or self._drain is not None:
            super().handle_exit(sig, frame)
            return
        start_draining()
        log.info("draining for %s s before shutting down", self.drain_s)
        self._drain = threading.Timer(self.drain_s, super().handle_exit, (sig, frame))
        self._drain.daemon = True
        self._drain.start()


def serve_processes(
    options: Mapping[str, Any],
    workers: int,
    *,
    on_exit: Callable[[int], None] | None = None,
    drain_s: float = 0.0,
) -> int:
    """Serve with `options` (`uvicorn.Config` arguments) in this process or in `workers`."""
    if workers == 1:
        server = DrainingServer(uvicorn.Config(**options), drain_s=drain_s)
        with contextlib.suppress(KeyboardInterrupt):
            server.run()
        # NOTE: as `uvicorn.run`: an app that could not be built is a start-up failure.
        return 0 if server.started else STARTUP_FAILURE
    return Supervisor(options, workers, on_exit=on_exit, drain_s=drain_s).run()


def run_worker(options: Mapping[str, Any], drain_s: float = 0.0) -> None:
    """One serving process: uvicorn with `options` on a socket of its own."""
    sock = reuse_port_socket(options["host"], options["port"])
    server = DrainingServer(uvicorn.Config(**options), drain_s=drain_s)
    try:
        server.run(sockets=[sock])
    except Exception:
        log.exception("worker %s failed", os.getpid())
        raise
    finally:
        # NOTE: uvicorn exits with 1 when the app cannot be built; any exit before serving is
        # a start-up failure, which restarting would only repeat.
        if not server.started:
            sys.exit(STARTUP_FAILURE)


class Supervisor:
    """Run `workers` serving processes until SIGINT or SIGTERM; replace any that dies."""

    def __init__(
        self,
        options: Mapping[str, Any],
        workers: int,
        *,
        on_exit: Callable[[int], None] | None = None,
        drain_s: float = 0.0,
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.options = dict(options)  # `uvicorn.Config` arguments; the app as an import string
        self.workers = workers
        self._on_exit = on_exit  # called with each exited worker's pid
        self.drain_s = drain_s  # each worker's drain on SIGTERM
        self._stop = threading.Event()
        self._context = multiprocessing.get_context("spawn")  # NOTE: no torch state is forked

    def run(self) -> int:
        """Serve until stopped; returns `STARTUP_FAILURE` when a worker could not start, else 0."""
        try:
            reserved = reuse_port_socket(self.options["host"], self.options["port"])
        except OSError as exc:
            log.error("cannot bind %s:%s: %s", self.options["host"], self.options["port"], exc)
            return STARTUP_FAILURE
        # NOTE: port 0 asks for a free port once; every worker then shares the one it got.
        self.options["port"] = reserved.getsockname()[1]
        previous = {sig: signal.signal(sig, self._on_signal) for sig in _STOP_SIGNALS}
        processes = [self._start() for _ in range(self.workers)]
        status = 0
        try:
            while not self._stop.wait(_CHECK_EVERY_S):
                for i, process in enumerate(processes):
                    if process.is_alive():
                        continue
                    if process.exitcode == STARTUP_FAILURE:  # NOTE: cleaned up with the rest
                        log.error("worker %s could not start; stopping", process.pid)
                        status = STARTUP_FAILURE
                        self._stop.set()
                        break
                    self._exited(process)
                    log.warning(
                        "worker %s exited (%s); starting another", process.pid, process.exitcode
                    )
                    processes[i] = self._start()
        finally:
            for process in processes:
                if process.is_alive() and process.pid is not None:
                    os.kill(process.pid, signal.SIGTERM)
            for process in processes:
                process.join()
                self._exited(process)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            reserved.close()
        return status

    def _start(self) -> BaseProcess:
        process = self._context.Process(
            target=run_worker, args=(self.options, self.drain_s), daemon=False
        )
        process.start()
        log.info(
            "started worker %s on %s:%s", process.pid, self.options["host"], self.options["port"]
        )
        return process

    def _exited(self, process: BaseProcess) -> None:
        if self._on_exit is not None and process.pid is not None:
            try:
                self._on_exit(process.pid)
            except Exception:  # NOTE: cleaning up after a worker must not stop the others.
                log.exception("cleaning up after worker %s failed", process.pid)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._stop.set()

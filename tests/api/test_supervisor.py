"""Several serving processes, a listening socket each: spread, replaced, drained, refused."""

import http.client
import json
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from app.supervisor import STARTUP_FAILURE
from tests.support import LOOPBACK, Process, free_port, spawn

pytestmark = pytest.mark.slow

_SERVE = (
    "import logging, sys; from app.supervisor import serve_processes; "
    "logging.basicConfig(level=logging.INFO); "
    "sys.exit(serve_processes({'app': sys.argv[1], 'factory': sys.argv[1].endswith('broken'), "
    "'host': sys.argv[2], 'port': int(sys.argv[3]), 'log_config': None}, 2))"
)


@contextmanager
def supervised(app: str, port: int, log_dir: Path) -> Iterator[Process]:
    """Two workers of `app` on `port` under the supervisor, in a process of their own."""
    with spawn(
        [sys.executable, "-c", _SERVE, app, LOOPBACK, str(port)], env={}, port=port, log_dir=log_dir
    ) as process:
        yield process


def get_pid(port: int, path: str = "/") -> int:
    connection = http.client.HTTPConnection(LOOPBACK, port, timeout=30)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        assert response.status == 200
        return int(json.loads(response.read())["pid"])
    finally:
        connection.close()


def pids_of_connections_opened_together(port: int, count: int = 32) -> set[int]:
    """Open `count` connections first, then ask each which process accepted it."""
    connections = [http.client.HTTPConnection(LOOPBACK, port, timeout=30) for _ in range(count)]
    for connection in connections:
        connection.connect()
    pids = set()
    for connection in connections:
        connection.request("GET", "/")
        pids.add(int(json.loads(connection.getresponse().read())["pid"]))
        connection.close()
    return pids


def test_connections_opened_together_reach_every_worker(tmp_path: Path) -> None:
    port = free_port()
    with supervised("tests.api.pid_app:app", port, tmp_path) as process:
        process.wait_ready("/")
        time.sleep(1.0)  # NOTE: both workers listening, not just the first one up
        # NOTE: each connection goes to one of two sockets by a hash of its address: all 32 on
        # one worker has odds of 2 in 2**32.
        assert len(pids_of_connections_opened_together(port)) == 2


def test_a_worker_that_dies_is_replaced(tmp_path: Path) -> None:
    port = free_port()
    with supervised("tests.api.pid_app:app", port, tmp_path) as process:
        process.wait_ready("/")
        time.sleep(1.0)
        before = pids_of_connections_opened_together(port)
        victim = min(before)
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 60
        after: set[int] = set()
        while time.monotonic() < deadline and len(after - before) == 0:
            time.sleep(0.5)
            after = pids_of_connections_opened_together(port)
        assert victim not in after and len(after) == 2, (before, after)
        assert process.popen.poll() is None


def test_sigterm_lets_a_request_in_flight_finish_then_exits(tmp_path: Path) -> None:
    port = free_port()
    with supervised("tests.api.pid_app:app", port, tmp_path) as process:
        process.wait_ready("/")
        answered: list[int] = []
        slow = threading.Thread(target=lambda: answered.append(get_pid(port, "/slow")))
        slow.start()
        time.sleep(0.3)  # NOTE: the request is in flight (the app takes a second)
        process.popen.send_signal(signal.SIGTERM)
        slow.join(timeout=30)
        assert answered, "the request in flight was not answered"
        assert process.popen.wait(timeout=30) == 0
        with pytest.raises(OSError):
            get_pid(port)


def test_an_app_that_cannot_start_stops_the_service(tmp_path: Path) -> None:
    port = free_port()
    with supervised("tests.api.pid_app:broken", port, tmp_path) as process:
        assert process.popen.wait(timeout=60) == STARTUP_FAILURE  # NOTE: not restarted forever
        output = process.log()
    assert "could not start" in output and "this app cannot start" in output


def test_a_port_in_use_fails_before_any_worker_starts(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind((LOOPBACK, 0))
        taken.listen()
        port = taken.getsockname()[1]
        with supervised("tests.api.pid_app:app", port, tmp_path) as process:
            assert process.popen.wait(timeout=30) == STARTUP_FAILURE
            output = process.log()
    assert f"cannot bind {LOOPBACK}:{port}" in output and "started worker" not in output

"""HAProxy (Debian's package) in front of several servers, with the health check Kubernetes'
readiness probe makes: `GET /readyz` every half second, out after two failures, back after two
passes. Its stats page says which servers it holds up and how many sessions each took.

By default the balancer retries a request whose connection failed or that got no answer at
all, on another server: `POST /predict` is safe to repeat, since a retried encounter gets the
same answer and the same review item back. Without retries it behaves as a Kubernetes Service
does: a connection routed to a stopping server fails.
"""

import contextlib
import csv
import io
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support import LOOPBACK, Process, free_port, spawn

CHECK_INTERVAL_MS = 500

CONFIG = """\
global
    maxconn 4096

defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    timeout queue 30s
    {retries}

frontend triage
    bind {host}:{port}
    default_backend replicas

backend replicas
    balance {balance}
    option httpchk GET /readyz
    http-check expect status 200
    default-server check inter {inter}ms fall 2 rise 2
{servers}

listen stats
    bind {host}:{stats_port}
    stats enable
    stats uri /stats
"""


def haproxy_config(
    servers: Sequence[int],
    *,
    port: int,
    stats_port: int,
    balance: str = "leastconn",
    retries: bool = True,
) -> str:
    """The configuration for `servers` (loopback ports), named r1, r2, ... in order."""
    lines = "\n".join(f"    server r{i + 1} {LOOPBACK}:{p}" for i, p in enumerate(servers))
    # NOTE: `retry-on` adds to a connection that failed a request a dying server accepted and
    # never answered; `redispatch` sends each retry to another server.
    retry = "retries 3\n    option redispatch 1\n    retry-on conn-failure empty-response"
    retry += " response-timeout"
    return CONFIG.format(
        host=LOOPBACK,
        port=port,
        stats_port=stats_port,
        servers=lines,
        balance=balance,
        inter=CHECK_INTERVAL_MS,
        retries=retry if retries else "retries 0",
    )


@dataclass
class Balancer:
    """A running HAProxy: its address and its view of the servers behind it."""

    process: Process
    stats_port: int

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:<port>` of the frontend."""
        return self.process.base_url

    def servers(self) -> dict[str, dict[str, str]]:
        """Each server's row of the stats CSV (`status` UP/DOWN, `stot` sessions taken)."""
        text = httpx.get(f"http://{LOOPBACK}:{self.stats_port}/stats;csv", timeout=5).text
        rows = csv.DictReader(io.StringIO(text.lstrip("# ")))
        return {r["svname"]: r for r in rows if r["pxname"] == "replicas" and r["svname"][0] == "r"}

    def status(self) -> dict[str, str]:
        """UP, DOWN (or a transition such as `UP 1/2`) per server."""
        return {name: row["status"] for name, row in self.servers().items()}

    def sessions(self) -> dict[str, int]:
        """Sessions each server has taken since the balancer started."""
        return {name: int(row["stot"] or 0) for name, row in self.servers().items()}

    def wait_status(self, name: str, status: str, timeout_s: float = 60.0) -> float:
        """Wait until server `name` is `status`; return the seconds it took."""
        start = time.monotonic()
        while time.monotonic() - start < timeout_s:
            if self.status().get(name) == status:
                return time.monotonic() - start
            time.sleep(0.05)
        raise RuntimeError(f"{name} not {status} after {timeout_s} s: {self.status()}")


def haproxy_binary() -> str | None:
    """The haproxy executable, if installed."""
    return shutil.which("haproxy") or next(
        (p for p in ("/usr/sbin/haproxy",) if Path(p).is_file()), None
    )


@contextlib.contextmanager
def balancer(
    servers: Sequence[int],
    *,
    work_dir: Path,
    balance: str = "leastconn",
    retries: bool = True,
) -> Iterator[Balancer]:
    """Run HAProxy in front of `servers` until the block ends; wait until one is up."""
    binary = haproxy_binary()
    if binary is None:
        raise RuntimeError("haproxy not installed (Debian package haproxy)")
    port, stats_port = free_port(), free_port()
    config = work_dir / f"haproxy-{port}.cfg"
    config.write_text(
        haproxy_config(
            servers,
            port=port,
            stats_port=stats_port,
            balance=balance,
            retries=retries,
        )
    )
    with spawn([binary, "-db", "-f", str(config)], env={}, port=port, log_dir=work_dir) as process:
        front = Balancer(process, stats_port)
        process.wait_ready("/readyz", timeout_s=30)
        yield front

"""Real processes for tests and load runs: a throwaway PostgreSQL and `triage serve`, and the
real data file's rows as API encounters (the load runner in `bench/` uses them too).

Everything listens on 127.0.0.1 on a free port and is stopped by the context manager that
started it. PostgreSQL refuses to run as root, so when we are root its commands run as the
`postgres` user.
"""

import contextlib
import csv
import glob
import gzip
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def as_postgres_user(cmd: list[str]) -> list[str]:
    """Run `cmd` as the `postgres` user when we are root (PostgreSQL refuses root)."""
    if os.geteuid() != 0:
        return cmd
    runuser = shutil.which("runuser")
    if runuser:
        return [runuser, "-u", "postgres", "--", *cmd]
    return ["su", "postgres", "-c", " ".join(cmd)]


def postgres_bindir() -> Path | None:
    """The newest installed PostgreSQL binaries folder, if any."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    initdb = found[-1] if found else shutil.which("initdb")
    return Path(initdb).parent if initdb else None


@dataclass
class Postgres:
    """A throwaway PostgreSQL cluster that can be stopped and started again on the same port."""

    bindir: Path
    root: Path
    port: int

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the `postgres` database."""
        return f"postgresql+psycopg://postgres@{LOOPBACK}:{self.port}/postgres"

    def _ctl(self, *args: str) -> None:
        cmd = [str(self.bindir / "pg_ctl"), "-D", str(self.root / "data"), *args]
        subprocess.run(as_postgres_user(cmd), check=True, capture_output=True, timeout=60)

    def start(self) -> None:
        """Start (or restart) the server and wait until it accepts connections."""
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses={LOOPBACK} -c fsync=off "
            "-c max_connections=200"
        )
        self._ctl("-o", options, "-l", str(self.root / "log"), "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (`fast` disconnects clients; `immediate` is a crash)."""
        self._ctl("-m", mode, "-w", "stop")

    def pids(self) -> list[int]:
        """The server's processes now: the postmaster and its children (one per connection)."""
        postmaster = int((self.root / "data" / "postmaster.pid").read_text().split()[0])
        children = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                # NOTE: the command name may hold spaces; the parent pid follows its ")".
                if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == postmaster:
                    children.append(int(stat.parent.name))
        return [postmaster, *children]

    def freeze(self) -> None:
        """SIGSTOP every server process: connections stay open but nothing answers (a hang)."""
        for pid in self.pids():
            os.kill(pid, signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT every server process."""
        for pid in self.pids():
            os.kill(pid, signal.SIGCONT)


@contextlib.contextmanager
def postgres() -> Iterator[Postgres]:
    """Start a throwaway PostgreSQL cluster; remove it on exit."""
    bindir = postgres_bindir()
    if bindir is None:
        raise RuntimeError("no PostgreSQL binaries found (install Debian's postgresql)")
    root = Path(tempfile.mkdtemp(prefix="triage-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    cmd = [str(bindir / "initdb"), "-D", str(root / "data"), "-U", "postgres", "--auth=trust"]
    subprocess.run(
        as_postgres_user([*cmd, "-E", "UTF8", "--no-sync"]),
        check=True,
        capture_output=True,
        timeout=120,
    )
    server = Postgres(bindir=bindir, root=root, port=free_port())
    server.start()
    try:
        yield server
    finally:
        with contextlib.suppress(subprocess.SubprocessError):
            server.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


def migrate_to_head(url: str) -> str:
    """Migrate the database at `url` to the newest schema; return the URL."""
    from alembic import command

    from app.core.config import Settings
    from app.db.commands import alembic_config

    command.upgrade(alembic_config(Settings(database_url=url)), "head")
    return url


def prepare_database(url: str) -> dict[str, str]:
    """Migrate `url` to the newest schema and create one key per role; return the keys."""
    from app.auth.models import Role
    from app.auth.service import create_key
    from app.db.session import Database

    migrate_to_head(url)
    database = Database(url)
    try:
        with database.session() as session:
            return {
                role.value: create_key(session=session, name=f"{role.value}-bench", role=role)[1]
                for role in Role
            }
    finally:
        database.dispose()


@dataclass
class Process:
    """A server subprocess on the loopback interface; its output goes to `log_path`."""

    popen: subprocess.Popen[bytes]
    port: int
    log_path: Path
    _log: Any = field(repr=False, default=None)

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:<port>`."""
        return f"http://{LOOPBACK}:{self.port}"

    def log(self) -> str:
        """Everything the process wrote so far."""
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, path: str = "/readyz", timeout_s: float = 60.0) -> None:
        """Poll `path` until it answers 200; raise with the log if the process dies or stalls."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError(f"server exited with {self.popen.returncode}:\n{self.log()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.base_url + path, timeout=2.0).status_code == 200:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"server not ready after {timeout_s} s:\n{self.log()}")

    def connections_per_worker(self) -> list[int]:
        """Established client connections each serving process holds now (Linux `/proc`).

        With several workers each listens on a socket of its own and the kernel hashes each
        connection to one of them, so a few connections can still land unevenly.
        """
        pid = self.popen.pid
        children = Path(f"/proc/{pid}/task/{pid}/children")
        pids = [int(c) for c in children.read_text().split()] if children.exists() else []
        listening, established = _socket_inodes(self.port, "0A"), _socket_inodes(self.port, "01")
        counts = []
        for worker in pids:
            inodes = _process_socket_inodes(worker)
            # NOTE: a worker listens on the port; other children (a resource tracker) do not.
            if inodes & listening:
                counts.append(len(inodes & established))
        return sorted(counts) or [len(_process_socket_inodes(pid) & established)]

    def terminate(self, timeout_s: float = 30.0) -> int:
        """SIGTERM, wait for a graceful exit (SIGKILL after `timeout_s`); return the code."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)
        if self._log is not None:
            self._log.close()
        return int(self.popen.returncode)


@contextlib.contextmanager
def spawn(cmd: list[str], *, env: Mapping[str, str], port: int, log_dir: Path) -> Iterator[Process]:
    """Run `cmd` with `env` added to ours; stop it (SIGTERM, then SIGKILL) on exit."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"server-{port}.log"
    log = log_path.open("wb")
    full_env = {**os.environ, **env}
    popen = subprocess.Popen(
        cmd, env=full_env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    process = Process(popen=popen, port=port, log_path=log_path, _log=log)
    try:
        yield process
    finally:
        process.terminate()


@contextlib.contextmanager
def triage_serve(
    *,
    database_url: str,
    log_dir: Path,
    workers: int = 1,
    model_dir: Path | None = None,
    extra_env: Mapping[str, str] | None = None,
    ready: bool = True,
) -> Iterator[Process]:
    """`triage serve` on a free loopback port with the given database and model."""
    port = free_port()
    env = {"TRIAGE_DATABASE_URL": database_url, "TRIAGE_INFERENCE__DEVICE": "cpu"}
    if model_dir is not None:
        env["TRIAGE_MODEL_DIR"] = str(model_dir)
    env.update(extra_env or {})
    cmd = [sys.executable, "-m", "app", "serve", "--host", LOOPBACK, "--port", str(port)]
    with spawn([*cmd, "--workers", str(workers)], env=env, port=port, log_dir=log_dir) as proc:
        if ready:
            proc.wait_ready()
        yield proc


def _socket_inodes(port: int, state: str) -> set[int]:
    """Inodes of TCP sockets on local `port` in `state` (kernel hex code: 01 established,
    0A listening)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as lines:
            next(lines)  # the header
            for line in lines:
                fields = line.split()
                if fields[3] == state and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(int(fields[9]))
    return inodes


def _process_socket_inodes(pid: int) -> set[int]:
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(int(target[8:-1]))
    return inodes


def published_rows(path: Path, n: int, *, skip: int = 0) -> list[dict[str, Any]]:
    """Rows `skip..skip+n` of the data file as API encounters (label and death/hospice dropped)."""
    from app.features.columns import DEATH_OR_HOSPICE_DISPOSITIONS, INTEGER_COLUMNS, LABEL_COLUMN

    rows: list[dict[str, Any]] = []
    with gzip.open(path, "rt", newline="") if path.suffix == ".gz" else path.open() as handle:
        for index, raw in enumerate(csv.DictReader(handle)):
            if index < skip:
                continue
            if len(rows) >= n:
                break
            row: dict[str, Any] = {}
            for name, value in raw.items():
                if name == LABEL_COLUMN or value == "?":
                    continue
                row[name] = int(value) if name in INTEGER_COLUMNS else value
            row["encounter_id"] = str(row["encounter_id"])
            if row.get("discharge_disposition_id") not in DEATH_OR_HOSPICE_DISPOSITIONS:
                rows.append(row)
    return rows


DEFAULT_DATA = ROOT.parent / "shared" / "data" / "diabetes130" / "diabetic_data.csv.gz"


def data_path() -> Path:
    """The data file: $TRIAGE_DATA_DIR/diabetic_data.csv.gz, else the shared folder."""
    directory = os.environ.get("TRIAGE_DATA_DIR")
    return Path(directory) / DEFAULT_DATA.name if directory else DEFAULT_DATA


def dead_database(url: str, tmp_path: Any) -> Any:
    """A database on the same backend that cannot be reached (a stopped server, a lost disk)."""
    from app.db.session import Database

    if url.startswith("sqlite"):
        return Database(f"sqlite:///{tmp_path}/missing-dir/triage.db", timeout_s=1)
    with socket.socket() as sock:  # a port nothing listens on: a stopped PostgreSQL
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return Database(f"postgresql+psycopg://postgres@127.0.0.1:{port}/triage", timeout_s=1)


PROMETHEUS = shutil.which("prometheus")
_PROMETHEUS_CONFIG = """
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files: [{rules}]
scrape_configs:
  - job_name: triage
    static_configs:
      - targets: ["{target}"]
"""


def prometheus_query(base: str, promql: str) -> list[dict[str, Any]]:
    """The result vector of an instant query."""
    answer = httpx.get(f"{base}/api/v1/query", params={"query": promql}, timeout=5).json()
    assert answer["status"] == "success", answer
    return list(answer["data"]["result"])


def prometheus_value(base: str, promql: str) -> float | None:
    """The first value of an instant query, None when it has none."""
    result = prometheus_query(base, promql)
    return float(result[0]["value"][1]) if result else None


@contextlib.contextmanager
def prometheus(target: str, tmp_path: Path, *, rules: Path | None = None) -> Iterator[str]:
    """Debian's Prometheus scraping `target` every second (and evaluating `rules`); its URL."""
    config = tmp_path / "prometheus.yml"
    config.write_text(_PROMETHEUS_CONFIG.format(target=target, rules=f'"{rules}"' if rules else ""))
    port = free_port()
    log = (tmp_path / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            str(PROMETHEUS),
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address={LOOPBACK}:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield f"http://{LOOPBACK}:{port}"
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        log.close()


def held_out_encounters(
    path: Path, n: int | None, model_dir: Path | None = None
) -> tuple[list[dict[str, Any]], Any]:
    """The first `n` encounters (None: all) of a model's test split (its card's patient split of
    the rows it was trained from; default the shipped model) as API encounters, with their
    labels (a NumPy bool array)."""
    from app.features.columns import INTEGER_COLUMNS, LABEL_COLUMN
    from app.inference.repository import latest_version_dir, read_card
    from app.training.data import SPLITS, load_dataset, split_assignment

    data = read_card(model_dir or latest_version_dir())["data"]
    seed = int(data["split_seed"])
    dataset = load_dataset(path, data.get("max_rows"))
    test = split_assignment(dataset.frame, seed) == SPLITS.index("test")
    encounters = [
        {
            name: int(value) if name in INTEGER_COLUMNS else value
            for name, value in row.items()
            if name != LABEL_COLUMN and isinstance(value, str)
        }
        for row in dataset.frame[test].iloc[:n].to_dict("records")
    ]
    for encounter in encounters:
        encounter["encounter_id"] = str(encounter["encounter_id"])
    return encounters, dataset.labels[test][:n].astype(bool)


def served_flags_at_two_seeds(loaded: Any, encounters: list[dict[str, Any]]) -> tuple[Any, Any]:
    """The serving Predictor's flag decisions (NumPy bool arrays) for `encounters` with the
    card's number of MC passes, drawn at the card's seed and at the next one."""
    import numpy as np

    from app.inference import MCDropoutEngine
    from app.inference.predictor import Predictor, ScoringRequest

    predictor = Predictor(loaded, MCDropoutEngine(loaded.model, device="cpu"))
    n_samples, seed = int(loaded.card["mc"]["n_samples"]), int(loaded.card["mc"]["seed"])

    def flags(at_seed: int) -> Any:
        answers = predictor.predict([ScoringRequest(e, n_samples, at_seed) for e in encounters])
        return np.array([p.flagged for p in answers])

    return flags(seed), flags(seed + 1)

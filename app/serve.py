"""`triage serve`: run the app under uvicorn, one process or several workers (`app.supervisor`)."""

import argparse
import os
import shutil
import tempfile
from typing import Final

from app.core.config import Settings
from app.observability.logging import configure_logging
from app.supervisor import serve_processes

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# NOTE: uvicorn's own access log and logging set-up are off: the app writes its own JSON lines.
SERVING_OPTIONS: Final = {"access_log": False, "log_config": None, "proxy_headers": True}


def app_factory() -> object:
    """Build the app from the environment (uvicorn calls this in each worker)."""
    from app.main import create_app

    settings = Settings()
    configure_logging(settings.log_level)
    return create_app(settings)


def serve(args: argparse.Namespace) -> int:
    """Serve on `args.host:args.port` with `args.workers` processes."""
    settings = Settings()  # NOTE: validate the configuration before any worker starts.
    configure_logging(settings.log_level)
    workers = max(1, int(args.workers))
    _pin_native_threads(settings.inference.threads)
    owned_dir: str | None = None
    if workers > 1:
        # NOTE: several workers share metric values through files; the folder must start empty.
        if not os.environ.get(MULTIPROC_ENV):
            owned_dir = tempfile.mkdtemp(prefix="triage-metrics-")
            os.environ[MULTIPROC_ENV] = owned_dir
        else:
            _empty(os.environ[MULTIPROC_ENV])
    app = {"app": "app.serve:app_factory", "factory": True, "host": args.host, "port": args.port}
    try:
        return serve_processes(
            {**SERVING_OPTIONS, **app},
            workers,
            on_exit=_forget_metrics,
            drain_s=settings.shutdown_drain_s,
        )
    finally:
        if owned_dir is not None:
            shutil.rmtree(owned_dir, ignore_errors=True)


def _forget_metrics(pid: int) -> None:
    """Drop an exited worker's live gauge values, which would otherwise still be summed."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid)


def _pin_native_threads(threads: int | None) -> None:
    """Give the maths libraries' own thread pools the inference thread count, before they load.

    NOTE: `torch.set_num_threads` in the lifespan covers torch's pool, yet the OpenMP runtime
    still starts one thread per core, and two workers on two cores then ran slower than one
    (decision 0006). The variables must be set before the workers import torch; values the
    operator set win.
    """
    if threads is None:
        return
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(name, str(threads))


def _empty(directory: str) -> None:
    os.makedirs(directory, exist_ok=True)
    for name in os.listdir(directory):
        if name.endswith(".db"):
            os.remove(os.path.join(directory, name))

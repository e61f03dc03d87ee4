"""The application factory `create_app(settings)`; its lifespan loads the model and the DB."""

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from prometheus_client import CollectorRegistry

from app.api.docs import install_docs
from app.api.errors import install_error_handlers
from app.api.middleware import RequestContextMiddleware
from app.api.routes import admin, health, metrics, predict, review_page, review_queue
from app.api.telemetry import telemetry
from app.auth.cache import KeyCache
from app.core.config import Settings
from app.db.session import Database
from app.inference.batcher import MicroBatcher
from app.inference.predictor import Prediction, Predictor, ScoringRequest
from app.inference.scoring_process import Hello, ScoringProcess, ScoringProcessError
from app.observability.metrics import Metrics, ReviewQueueCollector, multiprocess_dir
from app.observability.turn import TurnBuffer
from app.review.intake import Intake
from app.review.writer_process import WriterProcess
from app.web.render import STATIC_DIR

log = logging.getLogger("triage")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Load the model (checksum verified), start its scoring process, open the database and
    start the review-queue writer, run the batcher; undo on exit."""
    settings: Settings = app.state.settings
    metrics: Metrics = app.state.metrics
    inference = settings.inference
    predictor = Predictor.load(
        settings.resolved_model_dir(),
        device=inference.device,
        default_n_samples=inference.n_samples,
        threads=inference.threads,
    )
    # NOTE: bit-for-bit answers in any batch rest on the maths library's row-wise behaviour,
    # which tests prove on the build machine; re-check it on the serving host, in both
    # processes that score (small batches here, large ones in the scoring process).
    engine = predictor.engine
    invariant = await anyio.to_thread.run_sync(
        lambda: engine.check_batch_invariance(n_samples=predictor.default_n_samples)
    )
    scoring = None
    if inference.scoring_process:
        scoring, hello = await _start_scoring_process(settings, predictor)
        invariant = invariant and hello.invariant
    if not invariant:
        log.error("results depend on batch composition on this host: EHR retries may differ")
    database = Database(settings.database_url, timeout_s=settings.database_timeout_s)
    if not await anyio.to_thread.run_sync(database.ping):
        log.warning("database not reachable at start-up; flagged cases will get 503 until it is")
    writer = None
    if settings.review_writer_process:
        writer = WriterProcess(
            settings.database_url,
            timeout_s=settings.database_timeout_s,
            log_level=settings.log_level,
        )
        await writer.start()
    batcher = _batcher(settings, predictor, metrics, scoring)
    await batcher.start()
    metrics.set_model(
        version=predictor.model_version,
        n_samples=predictor.default_n_samples,
        threshold=predictor.threshold,
    )
    app.state.predictor = predictor
    app.state.database = database
    app.state.batcher = batcher
    app.state.scoring_process = scoring
    app.state.writer_process = writer
    app.state.queue_collector = ReviewQueueCollector(database, predictor.model_version)
    app.state.intake = Intake(
        predictor=predictor,
        batcher=batcher,
        database=database,
        min_n_samples=settings.inference.min_n_samples,
        max_n_samples=settings.inference.max_n_samples,
        observe=TurnBuffer(metrics.observe_predictions, name="predictions").extend,
        max_pending_writes=settings.inference.max_queue_size,
        writer_process=writer,
    )
    await app.state.intake.start()
    log.info(
        "model loaded",
        extra={
            "model_version": predictor.model_version,
            "device": str(getattr(engine, "device", inference.device)),
            "scoring_process": scoring is not None,
        },
    )
    # NOTE: a full collection walks every object the model, torch and SQLAlchemy left behind
    # (130 ms here) and under load ran often enough to be the p99 of /predict. Frozen objects
    # are skipped by collections; they are handed back at shutdown.
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
        await batcher.stop()
        await app.state.intake.stop()
        if writer is not None:
            await writer.stop()
        if scoring is not None:
            await scoring.stop()
        database.dispose()
        for name in (
            "intake",
            "batcher",
            "predictor",
            "scoring_process",
            "writer_process",
            "database",
            "queue_collector",
        ):
            setattr(app.state, name, None)


async def _start_scoring_process(
    settings: Settings, predictor: Predictor
) -> tuple[ScoringProcess, Hello]:
    """The scoring child, started, with the same model as `predictor`, and its greeting."""
    scoring = ScoringProcess(
        settings.resolved_model_dir(),
        device=settings.inference.device,
        default_n_samples=settings.inference.n_samples,
        threads=settings.inference.threads,
        log_level=settings.log_level,
        answer_timeout_s=settings.inference.scoring_timeout_s,
    )
    hello = await scoring.start()
    if hello.model_version != predictor.model_version:
        await scoring.stop()
        raise ScoringProcessError(
            f"the scoring process loaded model {hello.model_version}, not {predictor.model_version}"
        )
    return scoring, hello


def _batcher(
    settings: Settings, predictor: Predictor, metrics: Metrics, scoring: ScoringProcess | None
) -> MicroBatcher[ScoringRequest, Prediction]:
    version = predictor.model_version
    holder: list[MicroBatcher[ScoringRequest, Prediction]] = []

    def on_batch(size: int, seconds: float) -> None:
        metrics.observe_batch(model_version=version, size=size, seconds=seconds)
        metrics.queue_depth.labels(version).set(holder[0].queue_depth)

    inference = settings.inference
    # NOTE: batches above `inline_max_items` go to the child instead of a thread; with two in
    # flight the child starts the next one while the loop reads the last one's answer.
    run, in_flight = (None, 1) if scoring is None else (scoring.predict, 2)
    batcher: MicroBatcher[ScoringRequest, Prediction] = MicroBatcher(
        predictor.predict,
        max_batch_size=inference.max_batch_size,
        max_batch_delay_us=inference.max_batch_delay_us,
        max_queue_size=inference.max_queue_size,
        inline_max_items=inference.inline_max_items,
        on_batch=on_batch,
        run=run,
        max_in_flight=in_flight,
        settle_turns=inference.batch_settle_turns,
    )
    holder.append(batcher)
    return batcher


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; nothing is loaded until the lifespan starts."""
    settings = settings or Settings()
    registry = None if multiprocess_dir() else CollectorRegistry()
    metrics_ = Metrics(registry)
    app = FastAPI(
        title="triage",
        summary="30-day readmission risk with MC-dropout uncertainty and a clinician review queue",
        version="0.1.0",
        lifespan=lifespan,
        telemetry=telemetry(settings.opentelemetry),
        docs_url=None,  # NOTE: served by `install_docs`, from this service's own files
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
    )
    app.state.settings = settings
    app.state.metrics = metrics_
    app.state.key_cache = KeyCache(settings.auth.key_cache_ttl_s)
    for name in ("intake", "batcher", "predictor", "database", "queue_collector", "writer_process"):
        setattr(app.state, name, None)
    install_error_handlers(app)
    app.add_middleware(
        RequestContextMiddleware, metrics=metrics_, max_body_bytes=settings.max_body_bytes
    )
    for router in (
        predict.router,
        review_queue.router,
        admin.router,
        health.router,
        metrics.router,
    ):
        app.include_router(router)
    app.include_router(review_page.router)
    install_docs(app)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app

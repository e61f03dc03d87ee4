"""The application factory `create_app(settings)`; its lifespan loads the model and the DB."""

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Final

import anyio
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from prometheus_client import CollectorRegistry

from app.api.docs import install_docs
from app.api.errors import install_error_handlers
from app.api.middleware import RequestContextMiddleware
from app.api.routes import admin, health, metrics, predict, review_queue
from app.api.telemetry import telemetry
from app.auth.cache import KeyCache
from app.cds.fetch import default_client
from app.cds.jwks import FileJwks, Jwks, UrlJwks
from app.cds.routes import router as cds_router
from app.cds.tokens import EhrTokens
from app.cds.writer import AssessmentWriter, TokenUseWriter
from app.core.config import CdsSettings, Settings
from app.db.schema import SchemaCheck
from app.db.session import Database
from app.inference.batcher import MicroBatcher
from app.inference.metrics import FLAG_REASON_LABELS, observe_predictions
from app.inference.predictor import Prediction, Predictor, ScoringRequest
from app.inference.repository import resolve_model_dir
from app.inference.service import ScoringService
from app.monitoring.collector import PerformanceCollector
from app.monitoring.job import PerformanceJob
from app.monitoring.routes import router as monitoring_router
from app.observability.metrics import Metrics, multiprocess_dir
from app.observability.turn import TurnBuffer
from app.outcomes.routes import router as outcomes_router
from app.review.metrics import ReviewQueueCollector
from app.review.writer import ReviewWriter
from app.web.render import STATIC_DIR
from app.web.routes import ROUTERS as PAGE_ROUTERS

log = logging.getLogger("triage")
# What the lifespan puts on `app.state`; None before it starts and after it stops.
LIFESPAN_STATE: Final = (
    "scoring",
    "review_writer",
    "assessment_writer",
    "token_writer",
    "batcher",
    "predictor",
    "database",
    "queue_collector",
    "performance_job",
    "performance_collector",
    "schema_check",
)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Load the model (checksum verified), open the database, run the batcher and the
    review-queue writer; undo on exit."""
    settings: Settings = app.state.settings
    metrics: Metrics = app.state.metrics
    inference = settings.inference
    model_dir = resolve_model_dir(settings.model_dir, settings.model_repository)
    predictor = Predictor.load(
        model_dir,
        device=inference.device,
        default_n_samples=inference.n_samples,
        threads=inference.threads,
        action_threshold=settings.action_threshold,
    )
    # NOTE: bit-for-bit answers in any batch rest on the maths library's row-wise behaviour,
    # which tests prove on the build machine; re-check it on the serving host.
    engine = predictor.engine
    invariant = await anyio.to_thread.run_sync(
        lambda: engine.check_batch_invariance(n_samples=predictor.default_n_samples)
    )
    if not invariant:
        log.error("results depend on batch composition on this host: EHR retries may differ")
    database = Database(
        settings.database_url,
        timeout_s=settings.database_timeout_s,
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_max_overflow,
    )
    if not await anyio.to_thread.run_sync(database.ping):
        log.warning("database not reachable at start-up; flagged cases will get 503 until it is")
    batcher = _batcher(settings, predictor, metrics)
    await batcher.start()
    metrics.set_model(
        version=predictor.model_version,
        n_samples=predictor.default_n_samples,
        threshold=predictor.threshold,
        flag_reasons=FLAG_REASON_LABELS,
    )
    app.state.predictor = predictor
    app.state.database = database
    app.state.schema_check = SchemaCheck.from_migrations()
    app.state.batcher = batcher
    app.state.queue_collector = ReviewQueueCollector(database, predictor.model_version)
    performance_job = PerformanceJob(
        database,
        settings.monitoring,
        references={predictor.model_version: predictor.loaded.card.get("metrics") or {}},
        shared_dir=multiprocess_dir(),
    )
    app.state.performance_job = performance_job
    app.state.performance_collector = PerformanceCollector(performance_job)
    review_writer = ReviewWriter(database, max_pending_writes=settings.inference.max_queue_size)
    await review_writer.start()
    app.state.review_writer = review_writer
    assessment_writer = AssessmentWriter(
        database, max_pending_writes=settings.inference.max_queue_size
    )
    await assessment_writer.start()
    app.state.assessment_writer = assessment_writer
    token_writer = TokenUseWriter(database, max_pending_writes=settings.inference.max_queue_size)
    await token_writer.start()
    app.state.token_writer = token_writer
    app.state.scoring = ScoringService(
        predictor=predictor,
        batcher=batcher,
        review=review_writer,
        observe=TurnBuffer(partial(observe_predictions, metrics), name="predictions").extend,
    )
    log.info(
        "model loaded",
        extra={
            "model_version": predictor.model_version,
            "device": str(getattr(engine, "device", inference.device)),
        },
    )
    # NOTE: frozen start-up objects (model, torch, SQLAlchemy) are skipped by collections, so a
    # full collection no longer stalls requests; they are handed back at shutdown.
    gc.collect()
    gc.freeze()
    performance_job.start()
    try:
        yield
    finally:
        gc.unfreeze()
        performance_job.stop()
        await batcher.stop()
        await review_writer.stop()
        await assessment_writer.stop()
        await token_writer.stop()
        database.dispose()
        _clear_lifespan_state(app)


def _clear_lifespan_state(app: FastAPI) -> None:
    """Set what the lifespan provides to None: not started yet, or stopped."""
    for name in LIFESPAN_STATE:
        setattr(app.state, name, None)


def _batcher(
    settings: Settings, predictor: Predictor, metrics: Metrics
) -> MicroBatcher[ScoringRequest, Prediction]:
    version = predictor.model_version
    holder: list[MicroBatcher[ScoringRequest, Prediction]] = []

    def on_batch(size: int, seconds: float) -> None:
        metrics.observe_batch(model_version=version, size=size, seconds=seconds)
        metrics.queue_depth.labels(version).set(holder[0].queue_depth)

    inference = settings.inference
    batcher: MicroBatcher[ScoringRequest, Prediction] = MicroBatcher(
        predictor.predict,
        max_batch_size=inference.max_batch_size,
        max_batch_delay_us=inference.max_batch_delay_us,
        max_queue_size=inference.max_queue_size,
        inline_max_items=inference.inline_max_items,
        on_batch=on_batch,
        settle_turns=inference.batch_settle_turns,
    )
    holder.append(batcher)
    return batcher


def _ehr_tokens(cds: CdsSettings) -> EhrTokens | None:
    """The verifier of EHR JWTs, when issuers and their keys are configured."""
    if not cds.issuers or cds.public_url is None:
        return None
    jwks: Jwks
    if cds.jwks_url is not None:
        jwks = UrlJwks(cds.jwks_url, cache_s=cds.jwks_cache_s, refetch_min_s=cds.jwks_refetch_min_s)
    else:
        assert cds.jwks_path is not None  # NOTE: the settings require one of the two
        jwks = FileJwks(cds.jwks_path)
    return EhrTokens(jwks, cds.issuers, cds.public_url)


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
    app.state.fhir_client_factory = default_client
    cds = settings.cds
    app.state.ehr_tokens = _ehr_tokens(cds)
    _clear_lifespan_state(app)
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
        cds_router,
        outcomes_router,
        monitoring_router,
    ):
        app.include_router(router)
    for router in PAGE_ROUTERS:
        app.include_router(router)
    install_docs(app)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app

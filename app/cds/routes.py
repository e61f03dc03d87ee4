"""CDS Hooks routes: discovery, the hook, feedback; the RiskAssessment search; the model card.

The hook goes through the same data plane as `POST /predict` (`ScoringService.score`), so the
review queue, its idempotency and the 503 on a database outage are the same.
"""

import logging
from datetime import UTC, datetime
from typing import Annotated, Literal, get_args

import msgspec
from fastapi import APIRouter, Body, Path, Query, Request, Response
from pydantic_core import to_json

from app.api.deps import AssessmentWriterDep, DatabaseDep, EhrDep, ScoringDep
from app.api.responses import error_responses, json_response
from app.api.routing import CallerFirstRoute
from app.auth.service import Principal
from app.cds import store
from app.cds.assessment import assessment_id, risk_assessment
from app.cds.cards import SERVICE_ID, not_applicable_card, risk_card
from app.cds.discovery import PATIENT_VIEW_ID, PREFETCH, discovery
from app.cds.fetch import fetch_missing
from app.cds.schemas import FeedbackRequest, HookCall, HookRequest, openapi_body, read_hook
from app.cds.writer import AssessmentWriter
from app.core.errors import AppError, NotFoundError, UnavailableError
from app.features.fhir import FhirMappingError, MappedRecord, record_from_prefetch
from app.features.fhir.mapping import PREFETCH_KEYS, as_prefetch
from app.inference.service import Incoming, ScoringService

log = logging.getLogger(__name__)
router = APIRouter(tags=["cds hooks"], route_class=CallerFirstRoute, strict_content_type=False)
HOOKS = {SERVICE_ID: "encounter-discharge", PATIENT_VIEW_ID: "patient-view"}
FHIR_JSON = "application/fhir+json"


class HookInputError(AppError):
    """A hook request that cannot be assessed as sent (CDS Hooks: errors are HTTP errors)."""

    status_code = 400


@router.get("/cds-services")
async def services() -> Response:
    """The CDS Hooks discovery document (open, as EHRs read it when registering)."""
    return json_response(discovery())


async def _hook(
    service_id: str,
    request: Request,
    principal: Principal,
    scoring: ScoringService,
    writer: AssessmentWriter,
    body: bytes,
) -> Response:
    """Map, score through the data plane, keep the assessment, answer cards (shared by both
    services so they cannot answer differently)."""
    try:
        hook = read_hook(body)
        if hook.hook != HOOKS[service_id]:
            raise HookInputError(
                f"hook: this service answers {HOOKS[service_id]!r}, not {hook.hook!r}"
            )
        hook = await _completed(request, hook)
        mapped = _mapped(hook)
    except FhirMappingError as exc:
        raise HookInputError(f"{exc}; nothing was scored or stored") from exc
    assert hook.prefetch is not None
    encounter = mapped.encounter()
    if mapped.discharged_on is not None:  # NOTE: no feature, and not in the content hash
        encounter["discharge_date"] = mapped.discharged_on.isoformat()
    eid = str(encounter["encounter_id"])
    [scored] = await scoring.score(
        [Incoming(eid, encounter)],
        n_samples=None,
        seed=None,
        actor=principal.name,
        actor_key_id=principal.key_id,
    )
    base = str(request.base_url).rstrip("/")
    p = scored.prediction
    if p is None:
        version = scoring.predictor.model_version
        card = not_applicable_card(
            assessment_id(eid, version, "not-applicable"), str(scored.not_applicable), version, base
        )
        return json_response({"cards": [card]})
    assert scored.content_hash is not None
    key = (eid, p.model_version, scored.content_hash)
    made = risk_assessment(assessment_id(*key), hook.prefetch, p, datetime.now(UTC))
    try:
        resource = await writer.keep(store.Pending(key, made, scored.review_item_id))
    except UnavailableError as exc:
        if p.flagged:
            raise
        # NOTE: as for /predict, an unflagged answer is served without the database; only the
        # pull (GET /fhir/RiskAssessment) misses it.
        log.warning("unflagged RiskAssessment answered without being kept: %s", exc)
        resource = made
    card = risk_card(resource["id"], p, mapped.provenance, scored.review_item_id, base)
    action = {
        "type": "create",
        "description": "File the readmission RiskAssessment in the chart",
        "resource": resource,
    }
    return json_response({"cards": [card], "systemActions": [action]})


async def _completed(request: Request, hook: HookCall) -> HookCall:
    """The hook with what its prefetch lacks (a key absent or null) read from `fhirServer`
    (none of it stored)."""
    prefetch = hook.prefetch
    sent = {k: v for k in PREFETCH_KEYS if (v := getattr(prefetch, k, None)) is not None}
    if prefetch is not None and (hook.fhirServer is None or not set(PREFETCH) - set(sent)):
        return hook  # NOTE: a partial prefetch without a server is mapped as sent (absent = None)
    cds = request.app.state.settings.cds
    completed = await fetch_missing(
        sent,
        {"patientId": hook.context.patientId, "encounterId": hook.context.encounterId},
        hook.fhirServer,
        hook.fhirAuthorization,
        cds.fhir_servers,
        cds.fhir_timeout_s,
        request.app.state.fhir_client_factory,
    )
    fetched = as_prefetch({k: v for k, v in completed.items() if k not in sent})
    got = {k: getattr(fetched, k) for k in PREFETCH_KEYS if k not in sent}
    merged = msgspec.structs.replace(prefetch, **got) if prefetch is not None else fetched
    return msgspec.structs.replace(hook, prefetch=merged)


def _mapped(hook: HookCall) -> MappedRecord:
    """The record of the prefetch (FhirMappingError naming what to fix)."""
    assert hook.prefetch is not None
    mapped = record_from_prefetch(hook.prefetch)
    wanted = hook.context.encounterId
    if wanted is None:
        raise HookInputError("context.encounterId: missing; name the encounter to assess")
    if wanted != mapped.record["encounter_id"]:
        raise HookInputError(
            f"prefetch encounter: id {mapped.record['encounter_id']!r} is not"
            f" context.encounterId {wanted!r}"
        )
    return mapped


_HOOK_ERRORS = error_responses(400, 401, 403, 412, 413, 415, 422, 502, 503)


ServiceId = Literal["readmission-risk", "readmission-risk-patient-view"]
assert set(get_args(ServiceId)) == set(HOOKS)


# NOTE: the route reads its body itself (`read_hook`: msgspec Structs of what the mapping reads,
# a fraction of decoding 30 kB of FHIR into dicts); `HookRequest` documents it.
@router.post(
    "/cds-services/{service_id}", responses=_HOOK_ERRORS, openapi_extra=openapi_body(HookRequest)
)
async def readmission_risk(
    service_id: Annotated[ServiceId, Path(description="A service of GET /cds-services.")],
    request: Request,
    principal: EhrDep,
    scoring: ScoringDep,
    writer: AssessmentWriterDep,
) -> Response:
    """The risk card and a RiskAssessment (`encounter-discharge`, or `patient-view` with
    `context.encounterId`); a flagged case is in the review queue before this answers."""
    body = await request.body()
    return await _hook(service_id, request, principal, scoring, writer, body)


@router.post(
    f"/cds-services/{SERVICE_ID}/feedback",
    responses=error_responses(401, 403, 404, 413, 415, 422, 503),
)
async def feedback(
    principal: EhrDep, database: DatabaseDep, body: Annotated[FeedbackRequest, Body()]
) -> Response:
    """CDS Hooks feedback: stored, and shown in the audit trail of the card's review item."""
    entries = [
        store.Feedback(
            e.card,
            e.outcome,
            e.overrideReason.model_dump(exclude_none=True) if e.overrideReason else None,
            e.outcomeTimestamp,
        )
        for e in body.feedback
    ]
    count = await database.run(store.keep_feedback, database, entries, principal)
    return json_response({"stored": count})


@router.get("/fhir/RiskAssessment", responses=error_responses(401, 403, 503))
async def search_risk_assessments(
    request: Request,
    _principal: EhrDep,
    database: DatabaseDep,
    encounter: Annotated[str, Query(min_length=1, max_length=140)],
) -> Response:
    """A searchset Bundle of the RiskAssessments made for `encounter` (id or Encounter/id)."""
    eid = encounter.removeprefix("Encounter/")
    found = await database.run(store.assessments_of, database, eid)
    base = str(request.base_url).rstrip("/")
    bundle = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(found),
        "entry": [
            {
                "fullUrl": f"{base}/fhir/RiskAssessment/{r['id']}",
                "resource": r,
                "search": {"mode": "match"},
            }
            for r in found
        ],
    }
    return Response(to_json(bundle), media_type=FHIR_JSON)


@router.get("/models/{version}/card")
async def model_card(version: str, scoring: ScoringDep) -> Response:
    """The served model's card, linked from every CDS card's source (its feature encoding and
    domain guard left out: large, and no use to a reader)."""
    predictor = scoring.predictor
    if version != predictor.model_version:
        raise NotFoundError(
            f"model {version[:64]!r} is not served; this service serves {predictor.model_version!r}"
        )
    card = predictor.loaded.card
    shown = {k: v for k, v in card.items() if k not in ("feature_spec", "domain_guard")}
    return json_response(shown)

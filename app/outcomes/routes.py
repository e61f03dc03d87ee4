"""`POST /outcomes` (role ehr): whether scored encounters were readmitted within 30 days."""

from datetime import UTC, datetime
from functools import partial
from typing import Any

from fastapi import APIRouter, Body, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from app.api.deps import DatabaseDep, EhrDep, SettingsDep
from app.api.responses import error_responses, json_response
from app.api.routing import CallerFirstRoute
from app.core.errors import BadRequestError
from app.db.session import Database
from app.outcomes.schemas import OutcomeBatchIn, OutcomeIn, OutcomesOut
from app.outcomes.service import record_outcomes

router = APIRouter(tags=["outcomes"], route_class=CallerFirstRoute, strict_content_type=False)

_BODY: Any = Body(
    openapi_examples={
        "one": {"value": {"encounter_id": "12522", "readmitted": True, "readmitted_on": None}},
        "batch": {"value": {"outcomes": [{"encounter_id": "12522", "readmitted": False}]}},
    },
    description='One `OutcomeIn`, or `{"outcomes": [OutcomeIn, ...]}`.',
)


def _parsed(shape: dict[str, Any], raw: bytes) -> tuple[list[OutcomeIn], bool]:
    """The outcomes of a body (one object, or a batch under `outcomes`); 422 naming each field.

    NOTE: validated from the JSON text, where strict mode takes a date as "YYYY-MM-DD" text
    (and only `true`/`false` as a boolean); FastAPI has already refused a body that is not a
    JSON object.
    """
    batch = "outcomes" in shape
    model: type[BaseModel] = OutcomeBatchIn if batch else OutcomeIn
    try:
        body = model.model_validate_json(raw)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        ) from exc
    if isinstance(body, OutcomeBatchIn):
        return body.outcomes, True
    assert isinstance(body, OutcomeIn)
    return [body], False


def _record(database: Database, outcomes: list[OutcomeIn], actor: str, batch: bool) -> Any:
    with database.session() as session:
        today = datetime.now(UTC).date()
        return record_outcomes(
            session=session, outcomes=outcomes, actor=actor, today=today, batch=batch
        )


@router.post(
    "/outcomes",
    response_model=OutcomesOut,
    responses=error_responses(401, 403, 404, 409, 413, 415, 422, 503),
    openapi_extra={"requestBody": {"required": True}},
)
async def post_outcomes(
    request: Request,
    principal: EhrDep,
    database: DatabaseDep,
    settings: SettingsDep,
    _body: dict[str, Any] = _BODY,
) -> Response:
    """Record outcomes of scored encounters: the same value again is `unchanged`, another one
    needs `correct: true` (kept in the audit trail); any bad row stores nothing."""
    outcomes, batch = _parsed(_body, await request.body())
    if len(outcomes) > settings.max_batch_encounters:
        raise BadRequestError(
            f"outcomes: at most {settings.max_batch_encounters} per request, got {len(outcomes)}"
        )
    answers = await database.run(partial(_record, database, outcomes, principal.name, batch))
    return json_response({"outcomes": answers})

"""JSON answers serialised once, by pydantic-core."""

from typing import Any

from pydantic_core import to_json
from starlette.responses import Response


def json_response(content: Any) -> Response:
    """Plain data (dicts, lists, str, numbers, None) as an `application/json` answer.

    NOTE: returning a model makes FastAPI validate it again against the route's
    `response_model` before serialising it, and building a model per prediction costs more
    than its JSON: for a batch of 1,000 predictions both passes cost more than the scoring
    around them. The routes build plain dicts in the shape of their `response_model`, which
    they still declare for the docs (tests check answers against it).
    """
    return Response(to_json(content), media_type="application/json")

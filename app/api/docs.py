"""`GET /docs`: Swagger UI for the OpenAPI document, from this service's own files."""

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse

ASSETS = "/static/swagger-ui"  # NOTE: vendored in app/web/static/swagger-ui (see its README)


def install_docs(app: FastAPI) -> None:
    """Serve Swagger UI at `/docs` without any request leaving the service (no CDN)."""

    @app.get("/docs", include_in_schema=False)
    async def docs(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} API",
            swagger_js_url=f"{root}{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS}/favicon-32x32.png",
            # NOTE: the default validator badge would fetch an image from the internet.
            swagger_ui_parameters={"validatorUrl": None},
        )

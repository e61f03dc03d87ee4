"""The clinician review page's routes, by concern: signing in and out, the queue and its cases."""

from app.web.routes import cases, sign_in

ROUTERS = (sign_in.router, cases.router)

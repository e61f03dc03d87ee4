"""The review pages' routes, by concern: signing in and out, the queue and its cases, and
model health."""

from app.web.routes import cases, health, sign_in

ROUTERS = (sign_in.router, cases.router, health.router)

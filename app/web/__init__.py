"""The clinician review page: session cookies, CSRF, presentation, templates and static files."""

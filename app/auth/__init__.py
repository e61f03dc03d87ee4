"""API keys, roles and the principal behind a request."""

"""Storage: engine, sessions and the declarative base."""

"""HTTP layer: routes and dependencies only; the logic lives in the domain packages."""

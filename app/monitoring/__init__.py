"""Live model performance over matured outcomes: computed by a periodic job, read by /metrics."""

"""Training: data loading, the training loop, evaluation, calibration and the report."""

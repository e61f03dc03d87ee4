"""The review-queue domain: models, schemas and the service that works the queue."""

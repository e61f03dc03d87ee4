# triage service image: slim, non-root, CPU-only torch.
FROM python:3.11-slim AS base

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /srv/triage

# NOTE: the CPU wheel first, from PyTorch's index; the project's exact pin then finds it installed
# instead of pulling the multi-GB CUDA build.
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu

COPY pyproject.toml README.md ./
COPY app ./app
COPY migrations ./migrations
COPY alembic.ini ./
COPY models ./models
RUN pip install . \
    && useradd --system --uid 10001 --home-dir /srv/triage triage \
    && mkdir -p /srv/triage/data /tmp/triage-metrics \
    && chown triage:triage /srv/triage/data /tmp/triage-metrics

USER triage

# NOTE: matplotlib (the model health charts) keeps its font cache here: the home is not writable.
ENV TRIAGE_DATABASE_URL=sqlite:////srv/triage/data/triage.db \
    PROMETHEUS_MULTIPROC_DIR=/tmp/triage-metrics \
    MPLCONFIGDIR=/tmp/triage-matplotlib \
    WORKERS=2

EXPOSE 8000

HEALTHCHECK --interval=15s --timeout=3s --start-period=60s --retries=3 \
    CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status != 200)"

# Migrate, then serve: one container (compose). With several replicas (deploy/kubernetes) a Job
# migrates once and the replicas only serve, each waiting for the schema (/readyz).
# Keys: docker compose exec triage triage apikey create --role ehr --name EHR
CMD ["sh", "-c", "triage db upgrade && exec triage serve --host 0.0.0.0 --port 8000 --workers ${WORKERS}"]

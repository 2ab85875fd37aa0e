# One image for the API, the worker and one-off commands (migrate, keys, seed).
FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
RUN apt-get update && apt-get install -y --no-install-recommends libgomp1 curl && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml README.md alembic.ini cli.py cli_common.py cli_definitions.py cli_documents.py cli_events.py cli_retraining.py cli_scoring.py cli_startup.py cli_status.py cli_users.py worker.py ./
COPY core core
COPY models models
COPY migrations migrations
COPY workflows workflows
COPY activities activities
COPY providers providers
COPY scoring scoring
COPY definitions definitions
COPY api api
COPY services services
COPY events events
COPY console console
RUN pip install . && useradd --create-home --uid 10001 dealflow && mkdir -p /data/models \
    && chown dealflow /data/models
USER dealflow
ENV DEALFLOW_HOME=/home/dealflow/.dealflow DEALFLOW_API_HOST=0.0.0.0 DEALFLOW_LOG_FORMAT=json
EXPOSE 8000
CMD ["dealflow", "api"]

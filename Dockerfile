# One image for every Farloom process: the CLI (`farloom ...`) and Celery
# (`celery -A farloom_tasks ...`). docker-compose.yml picks the command.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md alembic.ini beat_schedule.py ./
COPY farloom_tasks ./farloom_tasks
COPY workers ./workers
COPY alembic ./alembic
RUN pip install . \
 && useradd --system --home-dir /app --shell /usr/sbin/nologin farloom \
 && mkdir -p /app/var && chown farloom /app/var
USER farloom

# Default healthcheck: the services this process needs answer. The api and the
# Celery worker override it in docker-compose.yml with a check of their own.
HEALTHCHECK --interval=30s --timeout=15s --start-period=20s --retries=3 \
  CMD ["farloom", "status", "--preflight"]

CMD ["farloom", "--help"]

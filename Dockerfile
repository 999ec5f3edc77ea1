# One image for the worker, beat and Flower (docker-compose.yml picks the command).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN useradd --create-home --uid 10001 turnout
WORKDIR /app
COPY pyproject.toml README.md ./
COPY producers producers
COPY routing routing
COPY workers workers
COPY ops ops
RUN pip install .

USER turnout
CMD ["celery", "-A", "workers.app", "worker", "-P", "threads", "-c", "200", "-l", "info"]

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
# The entra extra (azure-identity): on Azure, containers authenticate with managed or workload
# identity (auth: entra_id), so the image brings it; a pip install of turnout elsewhere may not.
RUN pip install .[entra]

USER turnout
CMD ["celery", "-A", "workers.app", "worker", "-P", "threads", "-c", "200", "-l", "info"]

# One image for every listgate process; docker-compose.yml picks the command.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    LISTGATE_DATA_DIR=/data

WORKDIR /app
COPY pyproject.toml README.md ./
COPY listgate ./listgate
COPY gateway ./gateway
COPY worker ./worker
COPY webarchive ./webarchive
RUN pip install . \
    && useradd --system --home-dir /data --shell /usr/sbin/nologin listgate \
    && mkdir -p /data \
    && chown listgate: /data

USER listgate
VOLUME ["/data"]
EXPOSE 2525 8080
CMD ["listgate", "--help"]

# One image for every listgate process; docker-compose.yml picks the command.
# The base image is pinned to an exact release; the Python packages come from the hash-checked
# lock (requirements/run.txt, made by `make lock`), then listgate itself with --no-deps.
FROM python:3.11.13-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    LISTGATE_DATA_DIR=/data

WORKDIR /app
COPY requirements/run.txt requirements/run.txt
RUN pip install --require-hashes -r requirements/run.txt
COPY pyproject.toml README.md ./
COPY listgate ./listgate
COPY gateway ./gateway
COPY worker ./worker
COPY webarchive ./webarchive
RUN pip install --no-deps --no-build-isolation . \
    && useradd --system --home-dir /data --shell /usr/sbin/nologin listgate \
    && mkdir -p /data \
    && chown listgate: /data

USER listgate
VOLUME ["/data"]
EXPOSE 2525 8080
CMD ["listgate", "--help"]

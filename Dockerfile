# caredesk: one image for every process (web, worker, listener, migrate); the command picks which.
#   docker build -t caredesk .        docker compose up      (see docs/deployment.md)
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# The triage model ships inside the package (model_default.npz): nothing is downloaded when a container starts.
WORKDIR /app
COPY pyproject.toml README.md LICENSE ./
COPY src ./src
RUN pip install . && rm -rf /app/src /app/build

# Never root: a process that parses attacker-controlled posts runs as a user that owns nothing but its data dir.
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin caredesk \
    && mkdir -p /home/caredesk/data && chown caredesk:caredesk /home/caredesk/data
USER caredesk
WORKDIR /home/caredesk
ENV CAREDESK_DATA_DIR=/home/caredesk/data \
    CAREDESK_LOG_FORMAT=json

EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status != 200)"]
CMD ["caredesk", "serve", "--host", "0.0.0.0", "--port", "8000"]

# The explain dashboard, served: docs/deploy.md says what each flag does and what is NOT protected.
#
#   docker build -t explain .
#   docker run --rm -p 8501:8501 -v /srv/explain-data:/data:ro explain
#
# Visitors see folders under /data only (mount your data folders there, read-only), may upload a
# model (.keras, .h5, a .zip of a SavedModel; loaded with safe mode on, never running code) and a
# .zip of class folders (unpacked per session into a temporary folder). Put it behind a reverse
# proxy with TLS and authentication before it faces the internet.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TF_CPP_MIN_LOG_LEVEL=2

WORKDIR /app

# The library first (its dependencies are the slow layer), installed as the README and .ci/run do.
COPY pyproject.toml README.md ./
COPY explain/ explain/
COPY training/ training/
RUN pip install --no-cache-dir -e .

# The dashboard, its settings (.streamlit/config.toml: upload cap, no tracebacks shown), the demo model.
COPY app.py ./
COPY dashboard/ dashboard/
COPY .streamlit/ .streamlit/
COPY models/ models/
COPY sample_images/ sample_images/

# Never run as root; /data is the data root (mount it read-only).
RUN groupadd --gid 10001 explain \
    && useradd --create-home --uid 10001 --gid 10001 explain \
    && mkdir -p /data
USER 10001:10001

EXPOSE 8501
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8501/_stcore/health', timeout=4)"]

CMD ["streamlit", "run", "app.py", "--server.address", "0.0.0.0", "--server.port", "8501", "--", "--data-root", "/data"]

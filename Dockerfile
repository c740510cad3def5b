# gcl-vdb serve: the search API and search page of one collection, on the CPU (ONNX Runtime).
#
#   docker build -t gcl-vdb .
#   docker run -p 127.0.0.1:8000:8000 -v "$PWD/models:/models:ro" gcl-vdb \
#       gcl-vdb serve --host 0.0.0.0 --qdrant http://qdrant:6333 --collection gs10m
#
# or `docker compose --profile serve up -d` (docker-compose.yml: the service beside Qdrant).
# The collection remembers the model that built it: mount the model where its record says it is
# (`gcl-vdb collections info gs10m`). One process per container: see `gcl-vdb serve --help`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY gcl_vectordb ./gcl_vectordb
COPY trainer ./trainer
COPY exporters ./exporters
RUN pip install ".[cpu]" && rm -rf /src

# never root: the service needs nothing but its port, the model and (embedded store) the store folder
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin gcl
USER gcl
WORKDIR /home/gcl

EXPOSE 8000
# /readyz: the collection is open and the service takes queries (the key, when one is set, from the env)
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; u.urlopen(u.Request('http://127.0.0.1:8000/readyz', headers={'x-api-key': os.environ.get('GCL_VDB_API_KEY', '')}), timeout=3)"]
# SIGTERM (docker stop) drains the requests in flight and closes the store; give it the drain time
STOPSIGNAL SIGTERM
CMD ["gcl-vdb", "serve", "--host", "0.0.0.0", "--port", "8000"]

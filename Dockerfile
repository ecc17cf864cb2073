# s3facade on its embedded defaults: local CAS + DuckDB log under /data.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

COPY pyproject.toml constraints.txt README.md ./
COPY s3facade ./s3facade
COPY registry ./registry
COPY backends ./backends
RUN pip install -c constraints.txt . \
    && useradd --system --home-dir /data --uid 10001 s3facade \
    && mkdir -p /data && chown s3facade /data

USER s3facade
VOLUME ["/data"]
EXPOSE 9000
HEALTHCHECK --interval=10s --timeout=3s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9000/-/health')"
ENTRYPOINT ["s3facade", "serve", "--host", "0.0.0.0", "--port", "9000", "--data-dir", "/data"]

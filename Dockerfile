# s3facade on its embedded defaults: local CAS + DuckDB log under /srv/s3facade/data, the
# log anchor and head-signing key beside it (data.log-anchor, data.head-signing.key), all in
# one volume; point anchor_path / head_signing_key at another volume to keep them apart.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
# Every setting has an S3FACADE_<KEY> twin (README, Configuration): `docker run -e` changes any.
ENV S3FACADE_HOST=0.0.0.0 S3FACADE_PORT=9000 S3FACADE_DATA_DIR=/srv/s3facade/data
WORKDIR /app

COPY pyproject.toml constraints.txt README.md ./
COPY s3facade ./s3facade
COPY registry ./registry
COPY backends ./backends
# The shared log's process (docs/scale-out.md) runs DuckDB 1.5.5 and DuckLake from its own
# pinned environment; used only with `[log] type = "ducklake"`.
COPY packaging/lake-requirements.txt ./packaging/
RUN python -m venv /opt/s3facade-lake \
    && /opt/s3facade-lake/bin/pip install -r packaging/lake-requirements.txt
ENV S3FACADE_LAKE_PYTHON=/opt/s3facade-lake/bin/python
RUN pip install -c constraints.txt . \
    && useradd --system --home-dir /srv/s3facade --uid 10001 s3facade \
    && mkdir -p /srv/s3facade/data && chown -R s3facade /srv/s3facade

USER s3facade
VOLUME ["/srv/s3facade"]
EXPOSE 9000
# Ready, not just alive: /-/ready answers 503 until the views caught up with the log (and when
# a backend is down), which urlopen turns into a failing exit status.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/-/ready' % os.environ['S3FACADE_PORT'])"
# Set S3FACADE_ACCESS_KEY_ID and S3FACADE_SECRET_ACCESS_KEY (secret: 8 characters or more):
# without them the server refuses to listen beyond loopback.
ENTRYPOINT ["s3facade", "serve"]

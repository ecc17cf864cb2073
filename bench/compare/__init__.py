"""s3facade beside moto, nginx and its upstreams, in one run: `make bench`
(`.venv/bin/python -m bench.compare`). See bench/compare/__main__.py."""

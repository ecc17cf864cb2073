"""Scripted runs of unchanged real S3 clients (aws cli, rclone, boto3) against a live server.

Run with `.venv/bin/python -m conformance.run` (or `python conformance/run.py`); see
`conformance/README.md`.
"""

"""The `s3facade` command."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import uvicorn

from backends import BackendSet
from backends.local import LocalCAS
from registry import Registry
from s3facade import commands as registry_commands
from s3facade.app import build_app
from s3facade.config import ServerConfig, load_config

log = logging.getLogger("s3facade")


def open_registry(config: ServerConfig, *, read_only: bool = False) -> Registry:
    """The embedded defaults: a local CAS under the data dir and the DuckDB log beside it."""
    local = LocalCAS(config.data_dir / "blobs")
    backends = BackendSet({local.backend_id: local}, "local")
    return Registry.open(config.data_dir, backends, read_only=read_only)


def open_offline(args: argparse.Namespace) -> Registry:
    """The registry of a stopped server, for the registry commands (`--data-dir`)."""
    config = load_config(args.config, {"data_dir": args.data_dir})
    return open_registry(config, read_only=True)


def serve(args: argparse.Namespace) -> int:
    config = load_config(
        args.config,
        {"host": args.host, "port": args.port, "data_dir": args.data_dir},
    )
    if config.dev_credentials:
        key = config.root_access_key_id
        print(
            "WARNING: S3FACADE_ACCESS_KEY_ID / S3FACADE_SECRET_ACCESS_KEY are not set; using "
            f"development credentials:\n  access key id:     {key}\n"
            f"  secret access key: {config.credentials[key]}\n"
            "Do not expose this server beyond your machine with them.",
            file=sys.stderr,
            flush=True,
        )
    registry = open_registry(config)
    app = build_app(config, registry)
    print(
        f"s3facade serving http://{config.host}:{config.port} (data dir {config.data_dir})",
        file=sys.stderr,
        flush=True,
    )
    uvicorn.run(
        app,
        host=config.host,
        port=config.port,
        log_level=args.log_level,
        server_header=False,
        access_log=args.log_level == "debug",
        timeout_keep_alive=30,
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="s3facade", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve_parser = commands.add_parser("serve", help="run the S3 gateway")
    serve_parser.add_argument("--host", default=None, help="listen address (127.0.0.1)")
    serve_parser.add_argument("--port", type=int, default=None, help="listen port (9000)")
    serve_parser.add_argument("--data-dir", type=Path, default=None, help="data dir (./data)")
    serve_parser.add_argument("--config", type=Path, default=None, help="TOML config file")
    serve_parser.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"]
    )
    serve_parser.set_defaults(run=serve)
    registry_commands.register(commands, open_offline)
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper() if hasattr(args, "log_level") else "INFO")
    result: int = args.run(args)
    return result


if __name__ == "__main__":
    sys.exit(main())

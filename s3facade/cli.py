"""The `s3facade` command."""

from __future__ import annotations

import argparse
import importlib.metadata
import logging
import os
import sys
from pathlib import Path

from s3facade.access_log import LOG_FORMATS, configure_logging
from s3facade.app import build_app
from s3facade.backends.catalog import ConfigError
from s3facade.command_line import add_commands, examples
from s3facade.command_list import COMMANDS
from s3facade.config import check_serving, load_config
from s3facade.config_values import SERVER_KEYS, ConfigInvalid
from s3facade.connections import serve_app
from s3facade.registry.errors import RegistryError
from s3facade.workspace import open_registry

log = logging.getLogger("s3facade")


def serve(args: argparse.Namespace) -> int:
    config = load_config(
        args.config,
        {
            "host": args.host,
            "port": args.port,
            "data_dir": args.data_dir,
            "upstream_endpoint": args.upstream_endpoint,
            "upstream_bucket": args.upstream_bucket,
            "upstream_region": args.upstream_region,
            "upstream_prefix": args.upstream_prefix,
            "log_format": args.log_format,
            "tls_cert": args.tls_cert,
            "tls_key": args.tls_key,
        },
    )
    configure_logging(args.log_level, config.log_format)
    check_serving(config)
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
    registry = open_registry(config, accept_log_loss=args.accept_log_loss, load_views=False)
    app = build_app(config, registry)
    listening = (
        f"s3facade serving {config.scheme}://{config.host}:{config.port} "
        f"(data dir {config.data_dir})"
    )
    serve_app(app, config, log_level=args.log_level, announce=listening)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The `s3facade` command line: every command and option, each with its help."""
    parser = argparse.ArgumentParser(prog="s3facade", description=__doc__)
    parser.add_argument("--version", action="version", version=f"s3facade {version()}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve_parser = commands.add_parser(
        "serve",
        help="run the S3 gateway",
        description="Run the S3 gateway (README: Configuration, Storage backends).",
        epilog=examples(
            "s3facade serve",
            "s3facade serve --port 9100 --data-dir /srv/s3facade/data",
            "s3facade serve --config /etc/s3facade/s3facade.toml --log-format json",
            "s3facade serve --tls-cert cert.pem --tls-key key.pem --host 0.0.0.0",
            "s3facade serve --upstream-endpoint http://rgw:7480 --upstream-bucket artifacts",
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve_parser.add_argument("--host", default=None, help="listen address (127.0.0.1)")
    serve_parser.add_argument("--port", type=port_number, default=None, help="listen port (9000)")
    serve_parser.add_argument("--data-dir", type=Path, default=None, help="data dir (./data)")
    serve_parser.add_argument("--config", type=Path, default=None, help="TOML config file")
    serve_parser.add_argument(
        "--log-level",
        default="info",
        choices=["critical", "error", "warning", "info", "debug"],
        help="info (the default) logs a line per request; debug adds tracebacks",
    )
    serve_parser.add_argument(
        "--log-format", choices=LOG_FORMATS, default=None, help="text (default) or json lines"
    )
    serve_parser.add_argument("--tls-cert", type=Path, help="serve HTTPS: PEM certificate chain")
    serve_parser.add_argument("--tls-key", type=Path, help="serve HTTPS: the PEM private key")
    serve_parser.add_argument(
        "--accept-log-loss",
        action="store_true",
        help="start although the log is missing, shorter than its anchor or rewritten "
        "(after you chose not to restore it): continues from the log as it is and records "
        "that decision in the log",
    )
    upstream = serve_parser.add_argument_group(
        "upstream quick start",
        "keep every bucket's bytes in an S3-compatible store (Ceph RGW, S3) instead of the "
        "data dir; credentials from S3FACADE_UPSTREAM_ACCESS_KEY_ID and "
        "S3FACADE_UPSTREAM_SECRET_ACCESS_KEY",
    )
    upstream.add_argument("--upstream-endpoint", metavar="URL", help="e.g. http://rgw:7480")
    upstream.add_argument("--upstream-bucket", metavar="NAME", help="existing upstream bucket")
    upstream.add_argument("--upstream-region", metavar="REGION", help="(us-east-1)")
    upstream.add_argument("--upstream-prefix", metavar="PREFIX", help="key prefix (none)")
    serve_parser.set_defaults(run=serve)
    config_parser = commands.add_parser("config", help="check a configuration")
    config_commands = config_parser.add_subparsers(dest="config_command", required=True)
    check = config_commands.add_parser(
        "check",
        help="print the effective configuration (file, environment, defaults), secrets masked",
        epilog=examples(
            "s3facade config check /etc/s3facade/s3facade.toml",
            "S3FACADE_PORT=9100 s3facade config check   # the file named by S3FACADE_CONFIG",
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    check.add_argument("file", type=Path, nargs="?", help="TOML config file (S3FACADE_CONFIG)")
    check.set_defaults(run=config_check)
    add_commands(commands, COMMANDS)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper() if hasattr(args, "log_level") else "INFO")
    logging.getLogger("botocore").setLevel(logging.WARNING)  # "credentials found in ..."
    try:
        result: int = args.run(args)
    except ConfigInvalid as exc:  # for every command: the message says where and what
        print(f"s3facade {args.command}: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (`... | head`): stop quietly, and keep Python's exit-time
        # flush of stdout from raising again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except (ConfigError, ValueError, OSError, RegistryError) as exc:  # log in use...
        if args.command != "serve":
            raise
        print(f"s3facade serve: {exc}", file=sys.stderr)
        return 2
    return result


def version() -> str:
    """The installed distribution's version."""
    try:
        return importlib.metadata.version("s3facade")
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed)"


def port_number(text: str) -> int:
    """--port: 1 to 65535 (argparse reports anything else as a usage error)."""
    try:
        return int(SERVER_KEYS["port"].from_text(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def config_check(args: argparse.Namespace) -> int:
    """The configuration `serve` would run with, as TOML-like lines; secrets masked."""
    config = load_config(args.file)
    check_serving(config)
    print("[server]")
    for key in SERVER_KEYS:
        value = getattr(config, key)
        if value is not None:
            print(f"{key} = {_shown(value)}")
    for key, user in config.users.items():
        root = " (root: from the environment)" if key == config.root_access_key_id else ""
        print(f"\n[users.{key}]{root}")
        print('secret = "********"')
        for name in ("display_name", "admin", "bypass_governance"):
            print(f"{name} = {_shown(getattr(user, name))}")
    for name, table in config.backends.items():
        print(f"\n[backends.{name}]")
        for key, value in table.items():
            secret = "secret" in key or "key" in key
            print(f"{key} = {_shown('********' if secret else value)}")
    if config.placement:
        print("\n[placement]")
        for key, value in config.placement.items():
            print(f"{key} = {_shown(value)}")
    if config.log:
        print("\n[log]")
        for key, value in config.log.items():
            secret = key in ("access_key_id", "secret_access_key")  # from the environment
            print(f"{key} = {_shown('********' if secret else value)}")
    print(f"\n# {len(config.retention)} retention policies")
    if config.dev_credentials:
        print("# root: the development credentials (S3FACADE_ACCESS_KEY_ID is not set)")
    return 0


def _shown(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_shown(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_shown(v)}" for k, v in value.items()) + "}"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


if __name__ == "__main__":
    sys.exit(main())

"""The provenance console: server-rendered pages under /-/console (see docs/console.md)."""

from s3facade.console.routes import Console

__all__ = ["Console"]

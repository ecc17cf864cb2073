"""The command table: every registry command, in the order `s3facade --help` lists them.
The CLI's parsers (s3facade.command_line) and the admin API's routes (s3facade.admin) are
built from it."""

from __future__ import annotations

from s3facade.command_table import Command
from s3facade.commands import QUERY_COMMANDS
from s3facade.import_command import IMPORT
from s3facade.upkeep_commands import UPKEEP_COMMANDS

COMMANDS: tuple[Command, ...] = (*QUERY_COMMANDS, *UPKEEP_COMMANDS, IMPORT)

"""The ``carecast`` command: check a config, run the pipeline, measure text, show the ledger.

Exit codes: 0 done (everything due was published or deliberately skipped); 1 the run finished but something in it
failed (a source; a publication failed, left for a retry or unknown; every draft of a channel refused by the rules);
2 the configuration or the command line is wrong, and nothing ran.
"""

from __future__ import annotations

import argparse
import atexit
import os
import sys
import threading
from collections.abc import Sequence
from typing import Any, NoReturn

from carecast.cli.common import EXIT_FAILED, EXIT_USAGE
from carecast.cli.records import add_record_commands, add_webhooks
from carecast.cli.review import add_review_commands
from carecast.cli.run import NOT_DONE, add_deploy, add_run, add_serve
from carecast.cli.setup import add_check, add_measure, add_practice
from carecast.cli.status import add_resolve, add_status
from carecast.errors import CareCastError, ConfigError

__all__ = ["EXIT_FAILED", "EXIT_USAGE", "NOT_DONE", "console", "main"]

# Each command imports the rest of what it needs (channel plugins, twitter-text, Jinja, Prefect) when it runs:
# `carecast status` on a million publications stays a small process that starts printing at once.

#: What ``carecast --help`` says first: plain text (the module's docstring is reStructuredText).
DESCRIPTION = "Check a CareCast config, run the pipeline, measure text, show the ledger, serve the webhooks."


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args))
    except ConfigError as exc:
        print(f"configuration error:\n{exc}", file=sys.stderr)
        return EXIT_USAGE
    except CareCastError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED


def console() -> NoReturn:
    """The ``carecast`` command itself (the console script): :func:`main`, then out.

    After a command that loaded Prefect, the process ends as soon as its work is done and written (other threads
    finished, exit handlers run, output flushed: Prefect's logs and events are sent by then), without tearing the
    interpreter down object by object, which took a `carecast run` a second more. Nothing is lost that way: every
    record is committed as it is made, and the design already survives a process that dies at any line.
    """
    code = main()
    if "prefect" not in sys.modules:
        sys.exit(code)
    for thread in threading.enumerate():
        if not thread.daemon and thread is not threading.current_thread():
            thread.join()
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="carecast",
        description=DESCRIPTION,
        epilog=__doc__.split("\n\n")[1].replace("\n", " "),  # the exit codes, plain text like the rest of --help
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    def command(name: str, handler: Any, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(handler=handler)
        return sub

    # In this order, as ``carecast --help`` lists them.
    add_check(command)
    add_run(command)
    add_status(command)
    add_serve(command)
    add_deploy(command)
    add_practice(commands)
    add_resolve(command)
    add_review_commands(command)
    add_record_commands(command)
    add_measure(command)
    add_webhooks(command)
    return parser

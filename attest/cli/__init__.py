"""The ``aer`` command line: every sub-command is registered here, grouped by role.

This package is the one command-line layer. :mod:`attest.cli.options` defines
the options that recur (log URL and key pinning, cosign-style identities,
trusted root and trust config, witnesses, ``--json``, output paths) once;
:mod:`attest.cli.runner` maps errors to one line and an exit code; each other
module holds one role's commands and only parses options, calls the library
(:mod:`attest`, :mod:`log_server`, the :mod:`verifier` core and its faces) and
prints. Run ``aer COMMAND --help`` for a command's options and exit codes.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from attest.cli import audit, gate, log, record, replay, setup, verify
from attest.cli.registry import Commands
from attest.cli.runner import EXIT_CODES_HELP, run

ROLES = (
    ("record and sign", record),
    ("verify", verify),
    ("log", log),
    ("gate and admission", gate),
    ("audit and witness", audit),
    ("replay and rollback", replay),
    ("set-up", setup),
)
"""Each role's heading in ``aer --help`` and the module that registers its commands."""


def build_parser() -> argparse.ArgumentParser:
    """Build the ``aer`` argument parser with every command."""
    parser = argparse.ArgumentParser(
        prog="aer",
        usage="aer [-h] COMMAND ...",
        description=(
            "AER - Agent Execution Records: record what an AI coding agent did, for whom "
            "and under which policies; sign it; verify it before anything ships."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(
        dest="cmd", metavar="COMMAND", required=True, help=argparse.SUPPRESS, prog="aer"
    )
    cmds = Commands(sub)
    for title, module in ROLES:
        module.register(cmds.role(title))
    parser.epilog = cmds.listing() + "\n" + EXIT_CODES_HELP
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``aer`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    code: int = run(args.func, args)
    return code


if __name__ == "__main__":
    sys.exit(main())

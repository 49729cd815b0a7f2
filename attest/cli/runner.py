"""The one runner: a command handler's errors become one line and an exit code.

Every ``aer`` command runs through :func:`run`, which turns an
:class:`~verifier.errors.AerError` into one line on standard error and its
exit code (see :mod:`verifier.errors`), and any other exception into an
"internal error" line (exit 1) — never a traceback, unless ``AER_DEBUG=1``.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Callable

from attest.cli.options import print_json
from verifier.errors import AerError

EXIT_CODES_HELP = """exit codes:
  0  everything checked holds
  1  internal error
  2  usage error
  3  unreadable input (missing file, malformed JSON or bundle, wrong media type)
  4  signature failure (bad signature, wrong key, extra signatures)
  5  schema violation (not an in-toto Statement, predicate violates the schema)
  6  subject mismatch (commit not covered, repository rewritten)
  7  transparency log failure (inclusion proof, checkpoint, consistency)
  8  identity or policy failure
  9  no record found (deploy gate)
  10 rollback conflict (aer rollback: nothing was changed)"""

GATE_EXIT_HELP = """exit codes:
  0  every agent-authored commit is covered by a verified record (human commits pass)
  2  usage error (e.g. no trusted builder for 'gate image')
  3  input error (repository, range, files, log unreachable)
  4  signature or identity failure (record not signed by a trusted key, subject mismatch)
  5  the image's provenance is not SLSA provenance v1
  6  the provenance found attests another image digest
  7  log proof failure (inclusion proof, checkpoint, SET)
  8  policy denied, or the provenance's keyless builder is not a trusted identity
  9  no record found for an agent-authored commit, or no provenance for the image"""

AUDIT_EXIT_HELP = EXIT_CODES_HELP.replace(
    "7  transparency log failure (inclusion proof, checkpoint, consistency)",
    "7  transparency log failure: bad signature, inconsistent or smaller tree, split view,\n"
    "     or a divergence between what the log serves and what it committed to",
)

Handler = Callable[[argparse.Namespace], int]


def run(func: Handler, args: argparse.Namespace) -> int:
    """Run a command handler; map errors to one line and an exit code."""
    try:
        return func(args)
    except AerError as e:
        if getattr(args, "json", False) and getattr(args, "json_errors", True):
            print_json(
                {
                    "ok": False,
                    "error": {
                        "kind": type(e).__name__,
                        "code": e.exit_code,
                        "message": e.diagnostics(),
                    },
                }
            )
        print(f"aer: error: {e.diagnostics()}", file=sys.stderr)
        if os.environ.get("AER_DEBUG"):
            traceback.print_exc()
        return e.exit_code
    except KeyboardInterrupt:
        print("aer: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1
    except Exception as e:
        print(
            f"aer: internal error: {type(e).__name__}: {e} "
            "(set AER_DEBUG=1 for a traceback and please report it)",
            file=sys.stderr,
        )
        if os.environ.get("AER_DEBUG"):
            traceback.print_exc()
        return 1

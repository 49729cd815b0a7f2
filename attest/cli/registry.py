"""The list of ``aer`` commands, grouped by role for ``aer --help``.

Each command module's ``register(cmds)`` adds its commands through
:meth:`Commands.add`, which creates the sub-parser (an epilog, such as the
exit-code table, keeps its layout) and notes the command's one-line help
under the current role; :meth:`Commands.listing` prints them grouped.
"""

from __future__ import annotations

import argparse
from typing import Any


class Commands:
    """The top-level sub-commands, each under a role heading."""

    def __init__(self, subparsers: Any) -> None:
        self._sub = subparsers
        self._groups: dict[str, list[tuple[str, str]]] = {}
        self._role = ""

    def role(self, title: str) -> Commands:
        """Put the commands added from now on under ``title``."""
        self._role = title
        self._groups.setdefault(title, [])
        return self

    def add(self, name: str, *, help: str, **kwargs: Any) -> argparse.ArgumentParser:
        """Add command ``name`` (``help`` is its line in ``aer --help``)."""
        if "epilog" in kwargs:  # exit-code tables keep their layout
            kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        parser: argparse.ArgumentParser = self._sub.add_parser(name, **kwargs)
        self._groups.setdefault(self._role, []).append((name, help))
        return parser

    def listing(self) -> str:
        """The commands by role, as ``aer --help`` shows them."""
        width = max(len(name) for group in self._groups.values() for name, _ in group)
        lines = []
        for title, group in self._groups.items():
            lines.append(f"{title}:")
            lines += [f"  {name.ljust(width)}  {text}" for name, text in group]
            lines.append("")
        return "\n".join(lines)

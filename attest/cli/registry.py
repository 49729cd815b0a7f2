"""The list of ``aer`` commands, grouped by role for ``aer --help``.

A command is its handler: :meth:`Commands.add` takes the handler's docstring
as the command's help (the first line, as ``aer --help`` lists it) and
description (the rest, as ``aer COMMAND --help`` shows it), creates the
sub-parser and routes it to the handler. An epilog (the exit-code table)
keeps its layout. :meth:`Commands.group` makes a command with sub-commands
(``aer log serve``); :meth:`Commands.listing` prints the commands by role.
"""

from __future__ import annotations

import argparse
import inspect
from collections.abc import Callable
from typing import Any

Handler = Callable[[argparse.Namespace], int]


def _help_and_description(doc: str | None) -> tuple[str, str]:
    """Split a docstring into its first line (without the full stop) and the rest."""
    text = inspect.cleandoc(doc or "")
    first, _, rest = text.partition("\n")
    return first.strip().removesuffix("."), rest.strip()


class Commands:
    """Sub-commands of ``aer`` (or of a command group), each top-level one under a role."""

    def __init__(self, subparsers: Any, *, top_level: bool = True) -> None:
        self._sub = subparsers
        self._top_level = top_level
        self._groups: dict[str, list[tuple[str, str]]] = {}
        self._role = ""

    def role(self, title: str) -> Commands:
        """Put the commands added from now on under ``title``."""
        self._role = title
        self._groups.setdefault(title, [])
        return self

    def _parser(self, name: str, help: str, **kwargs: Any) -> argparse.ArgumentParser:
        if self._top_level:
            self._groups.setdefault(self._role, []).append((name, help))
        else:
            kwargs["help"] = help
        raw = kwargs.pop("raw", False)
        if kwargs.get("epilog") or raw:
            kwargs["formatter_class"] = argparse.RawDescriptionHelpFormatter
        parser: argparse.ArgumentParser = self._sub.add_parser(name, **kwargs)
        return parser

    def add(
        self, name: str, handler: Handler, *, epilog: str | None = None, raw: bool = False
    ) -> argparse.ArgumentParser:
        """Add command ``name``, run by ``handler`` and described by its docstring.

        With an ``epilog`` or ``raw``, the description keeps its line breaks.
        """
        help, description = _help_and_description(handler.__doc__)
        parser = self._parser(name, help, description=description, epilog=epilog, raw=raw)
        parser.set_defaults(func=handler)
        return parser

    def group(self, name: str, doc: str) -> Commands:
        """Add command ``name`` whose sub-commands the returned :class:`Commands` adds.

        ``doc`` is its help line, a blank line and its description, like a docstring.
        """
        help, description = _help_and_description(doc)
        parser = self._parser(name, help, description=description)
        sub = parser.add_subparsers(
            dest=f"{name.replace('-', '_')}_cmd",
            metavar=f"{name.replace('-', '').upper()}COMMAND",
            required=True,
        )
        return Commands(sub, top_level=False)

    def listing(self) -> str:
        """The commands by role, as ``aer --help`` shows them."""
        width = max(len(name) for group in self._groups.values() for name, _ in group)
        lines = []
        for title, group in self._groups.items():
            lines.append(f"{title}:")
            lines += [f"  {name.ljust(width)}  {text}" for name, text in group]
            lines.append("")
        return "\n".join(lines)

"""A griffe extension for the docs site: Sphinx roles in docstrings shown as code.

The docstrings use Sphinx roles (``:class:`Factory```, ``:meth:`~Device.put```); the
site is Markdown, where they would print literally. mkdocstrings loads this extension
(``mkdocs.yml``) and each role becomes inline code with the name a reader knows.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:class|meth|func|attr|data|mod|exc|obj|const):`~?\.?([^`]+)`")


def shown(text: str) -> str:
    """``text`` with each Sphinx role as inline code of its last name part."""
    return ROLE.sub(lambda match: f"`{match.group(1).rsplit('.', 1)[-1]}`", text)


class SphinxRoles(griffe.Extension):
    """Rewrites the roles of every docstring griffe loads."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        """An object is loaded: rewrite its docstring."""
        if obj.docstring is not None:
            obj.docstring.value = shown(obj.docstring.value)

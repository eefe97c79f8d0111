"""import-linter contract types of this project (``[tool.importlinter] contract_types``).

``private_modules``: a module named ``_something`` is private to its package. Any
package of ``root`` may import its own private modules; another package imports only
what the package's ``__init__`` exports. (import-linter's ``forbidden`` contract takes
no wildcards, so the rule would otherwise be one contract per package.)
"""

from __future__ import annotations

from typing import Any

from importlinter import Contract, ContractCheck, fields, output


def _package(module: str, depth: int) -> str:
    """``epics_collector.storage`` of ``epics_collector.storage._spill`` (depth 2)."""
    return ".".join(module.split(".")[:depth])


def _private_part(module: str, depth: int) -> bool:
    """Whether ``module`` names a private module below its package (``pkg._x``, ``pkg.a._y``)."""
    return any(part.startswith("_") and part != "__init__" for part in module.split(".")[depth:])


class PrivateModulesContract(Contract):
    """No package of ``root`` imports another package's private modules."""

    root = fields.StringField()

    def check(self, graph: Any, verbose: bool) -> ContractCheck:
        """Every direct import across packages that names a private module breaks it."""
        root = str(self.root)
        depth = len(root.split(".")) + 1
        broken = []
        for importer in sorted(graph.find_descendants(root)):
            for imported in sorted(graph.find_modules_directly_imported_by(importer)):
                if not imported.startswith(root + "."):
                    continue
                if _package(importer, depth) == _package(imported, depth):
                    continue
                if _private_part(imported, depth):
                    broken.append((importer, imported))
        return ContractCheck(kept=not broken, metadata={"broken": broken})

    def render_broken_contract(self, check: ContractCheck) -> None:
        """One line per import of another package's private module."""
        for importer, imported in check.metadata["broken"]:
            output.print_error(f"{importer} imports {imported}, private to its package")
            output.new_line()

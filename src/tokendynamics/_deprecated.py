"""Old import paths, kept for a release: each makes its module the one it moved to, with a warning."""

from __future__ import annotations

import importlib
import sys
import warnings

REMOVED_IN = "0.4"


def moved(old: str, new: str, submodules: dict[str, str] | None = None) -> None:
    """Make module ``old`` (and ``old.<name>`` for each ``name -> new_name`` of ``submodules``) the module
    ``new`` (``new.<new_name>``), warning the importer."""
    warnings.warn(f"{old} moved to {new}; the old path goes in {REMOVED_IN}", DeprecationWarning, stacklevel=3)
    sys.modules[old] = importlib.import_module(new)
    for name, new_name in (submodules or {}).items():
        sys.modules[f"{old}.{name}"] = importlib.import_module(f"{new}.{new_name}")


def renamed(module: str, old: str, new: str, value):
    """``value`` (``module.new``), reached under its old name ``old``, with a warning."""
    warnings.warn(f"{module}.{old} is now {module}.{new}; the old name goes in {REMOVED_IN}", DeprecationWarning,
                  stacklevel=3)
    return value

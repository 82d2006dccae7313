"""The flows and translation catalogs shipped with the bot, found the same way however it runs.

``flows``, ``locales`` and ``services`` beside this file are links to the folders at the repository root,
where staff edit them. A checkout or an editable install (``pip install -e .``) reads the root
folders through the links. Building a wheel (``pip install .``, the Docker image) follows the
links: setuptools copies the files they point at into the package (``[tool.setuptools.
package-data]`` in pyproject.toml), so an installed bot carries its own copy and needs no
checkout and no particular current folder. ``BOT_FLOWS_DIR``, ``BOT_LOCALES_DIR`` and
``BOT_SERVICES_DIR`` point a running bot at other copies (see bot/config.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

__all__ = ["shipped_dir"]

_HERE = Path(__file__).resolve().parent


def shipped_dir(name: Literal["flows", "locales", "services"]) -> Path:
    """The shipped folder, with links resolved (so paths shown to staff read ``flows/...``)."""
    return (_HERE / name).resolve()

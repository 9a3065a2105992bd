"""Finding the model modules, so that their ``@register`` options exist.

Hydra composes the config before any model is built, so a model option exists
only if the module that registers it was imported first. Two places are
searched when :mod:`classifier_training.models` is imported (``classifier-train``
imports it before composing):

* every module of the package itself: a new file in
  ``src/classifier_training/models/`` registers its options, nothing else to edit;
* every entry point of the group :data:`ENTRY_POINT_GROUP` of the installed
  distributions, for models kept in a package of their own. In that package's
  ``pyproject.toml``::

      [project.entry-points."classifier_training.models"]
      my_models = "my_package.my_models"

  after which ``classifier-train model=<name registered there>`` works (the way
  pytest and Hydra find their plugins).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable
from importlib.metadata import entry_points

#: Entry-point group whose modules are imported with the model package.
ENTRY_POINT_GROUP = "classifier_training.models"


def import_model_modules(package_path: Iterable[str], package_name: str) -> None:
    """Import the package's modules, then the entry points' (once each).

    Args:
        package_path: The package's ``__path__``.
        package_name: The package's ``__name__``.
    """
    for module in pkgutil.iter_modules(package_path, f"{package_name}."):
        importlib.import_module(module.name)
    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        entry_point.load()

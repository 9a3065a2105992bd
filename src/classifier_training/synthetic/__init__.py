"""Built-in synthetic jersey-number dataset (``classifier-synth``).

Every image is a crop of the back of a sports jersey showing a number between
``0`` and ``99``, or no number at all for the empty label ``""``. The same
configuration always writes byte-identical files.

Modules, bottom up: :mod:`.classes` (labels and class specs), :mod:`.config`
(:class:`SynthConfig`, every default), :mod:`.colors`, :mod:`.geometry`
(homographies), :mod:`.fonts`, :mod:`.texture` (stripes, logos, shading),
:mod:`.render` (one crop), :mod:`.writer` (the dataset on disk) and :mod:`.cli`.

Example:
    >>> from pathlib import Path
    >>> from classifier_training.synthetic import SynthConfig, generate_dataset
    >>> config = SynthConfig(out_dir=Path("data/synth"), per_class=60)
    >>> counts = generate_dataset(config)  # doctest: +SKIP
"""

from classifier_training.synthetic.classes import DEFAULT_CLASSES, parse_class_spec
from classifier_training.synthetic.config import SPLITS, SynthConfig, SynthError
from classifier_training.synthetic.render import render_sample
from classifier_training.synthetic.writer import dataset_is_complete, generate_dataset

__all__ = [
    "DEFAULT_CLASSES",
    "SPLITS",
    "SynthConfig",
    "SynthError",
    "dataset_is_complete",
    "generate_dataset",
    "parse_class_spec",
    "render_sample",
]

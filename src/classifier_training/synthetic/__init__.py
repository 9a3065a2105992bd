"""Built-in synthetic jersey-number dataset (``classifier-synth``).

Example:
    >>> from pathlib import Path
    >>> from classifier_training.synthetic import SynthConfig, generate_dataset
    >>> config = SynthConfig(out_dir=Path("data/synth"), per_class=60)
    >>> counts = generate_dataset(config)  # doctest: +SKIP
"""

from classifier_training.synthetic.generator import (
    DEFAULT_CLASSES,
    SPLITS,
    SynthConfig,
    SynthError,
    dataset_is_complete,
    generate_dataset,
    parse_class_spec,
    render_sample,
)

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

"""Allow ``python -m classifier_training.synthetic``."""

from classifier_training.synthetic.cli import main

if __name__ == "__main__":
    raise SystemExit(main())

"""The parts of a training run that ``classifier_training.train`` composes.

* :mod:`.builders`: the config nodes from code, and data module, model,
  callbacks, loggers and trainer built from the composed config;
* :mod:`.resume`: resuming (``metrics.csv`` continued, the command printed on
  Ctrl-C, another run's checkpoints refused);
* :mod:`.postfit`: after ``fit``: the best weights scored on val and test, the
  temperature fitted on those logits, the deployment files and tables written;
* :mod:`.precision`: ``trainer.precision=auto`` resolved for this machine;
* :mod:`.deployment`: ``export.precisions``, the int8/fp16 files written after
  fitting through ``classifier-export``'s accuracy guard;
* :mod:`.results`: ``metrics.json`` assembled, published and summarised;
* :mod:`.messages`: what the run prints (third-party noise hidden, loguru routed
  to Hydra's log files).
"""

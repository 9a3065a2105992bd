"""The label audit (``classifier-audit-labels``): out-of-fold confident learning.

* :mod:`.folds`: which train rows each fold model holds out (stratified by label,
  grouped by track);
* :mod:`.plan`: every start-up check, before any training;
* :mod:`.runner`: one ``classifier-train`` run per fold, then its calibrated
  predictions of the rows it did not see;
* :mod:`.issues`: flagged rows and their reasons (confident learning, tracks);
* :mod:`.results`: ``label_issues.jsonl``, ``summary.json``, the review page,
  the terminal table;
* :mod:`.clean`: ``--write-clean``, a copy of the dataset without them;
* :mod:`.cli`: the command.
"""

"""``curate eval``: does curation pay? The same small model trained on the raw set, the curated set, a
random subset of the curated size, per-stage ablations, relabelled and clean-label sets, each scored on
the same trusted test set, with a leakage check first.

Modules, one idea each: :mod:`~curate.eval.testset` (the test set), :mod:`~curate.eval.features` (what
the models see, the same for both sets), :mod:`~curate.eval.arms` (the training sets),
:mod:`~curate.eval.models` (the small models), :mod:`~curate.eval.leakage` (test items duplicating training
items), :mod:`~curate.eval.results` (``RUN/eval/eval.json``, its documented shape, and the table),
:mod:`~curate.eval.evaluate` (the order of work).
"""

from curate.eval.evaluate import EvalOptions, evaluate

__all__ = ["EvalOptions", "evaluate"]

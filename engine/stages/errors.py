"""``StageError``: a stage failed for a reason the user can act on.

Raise it with a message that names the input at fault and what to do (``seed file
data/taco.jsonl does not exist (resolved to /abs/data/taco.jsonl): fix seeds.sources.0.path``).
The runner records the stage as failed with exactly that message, without a traceback;
any other exception is treated as a bug and its traceback goes to the stage's log.
"""

from __future__ import annotations


class StageError(Exception):
    """A stage cannot go on; ``str(error)`` is the reason shown to the user."""

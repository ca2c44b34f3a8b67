"""Targets, the third axis: what the requests go to, each with its lifecycle and its referee.

The delay server (``servers/``, started by ``servers.process``) and PostgreSQL
(``bench/targets/postgres.py``). A referee counts what its target saw, by itself, never
through the client (design rule 11); the round recorder reads it around every round
through the same three calls: ``exit_status()``, ``reset_stats()`` and ``stats()``.
"""

# The names live at the ground floor, where the clients that declare their target can read them.
from bench.names import DELAY, OWN, POSTGRES, TARGET_NAMES

__all__ = ["DELAY", "OWN", "POSTGRES", "TARGET_NAMES"]

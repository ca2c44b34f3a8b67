"""Targets, the third axis: what the requests go to, each with its lifecycle and its referee.

The delay server (``servers/``, started by ``servers.process``) and PostgreSQL
(``bench/targets/postgres.py``). A referee counts what its target saw, by itself, never
through the client (design rule 11); the round recorder reads it around every round
through the same three calls: ``exit_status()``, ``reset_stats()`` and ``stats()``.
"""

DELAY = "delay"
POSTGRES = "postgres"
# A user's own IO (--bench-fetch, bench/clients/byo.py): whatever it talks to, with no referee.
OWN = "own"
# How a message names each one.
TARGET_NAMES = {DELAY: "the delay server", POSTGRES: "PostgreSQL", OWN: "your own IO (--bench-fetch)"}

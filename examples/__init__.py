"""Worked examples of ``--bench-fetch``: your own IO under every model (docs/reference/own-io.md)."""

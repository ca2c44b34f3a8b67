"""What a test against a real server may accept on a shared machine, and nothing more.

The suite's own tests run beside other work on two cores (issue 19, item 8): the delay server
can answer a few ms late, and the kernel's listen-overflow counter is the whole network
namespace's. Either makes a row INVALID as the instrument's limit (``instrument_limited``), a
verdict about the machine at that moment, not about the code under test. A real-server test
asserts counts and plumbing exactly, and accepts only that verdict besides VALID; the
validity rules themselves are tested with synthetic rounds (tests/test_summary.py).
"""

from __future__ import annotations


def assert_valid_or_the_instruments_limit(info: dict) -> None:
    # A late row is the model's cost when the worker held the CPU the server waited for (issue 22):
    # on a loaded machine a test's own worker can, so that verdict is the machine's too.
    assert info["valid"] or info["instrument_limited"] or info.get("model_limited"), info["invalid_reason"]

"""The analysis: rows, validity and verdicts. A row's ``extra_info`` from its rounds, whether it
is valid, speedups with their confidence intervals, the tables' and verdict lines' text, and
saved runs read back.
"""

"""The reporting: tables, report and charts, and what a run records. The charts, the versions
report (its table, picture and the gate's Python rule) and the context a saved run records
about its machine and command. The commands themselves stay at the top: ``python -m
bench.report``, ``python -m bench.compare``, ``python -m bench.versions``.
"""

"""Looking at the monitoring: the drift-detector simulation harness and the per-window report/chart.

Developer tooling only (never ships to Lambda): the harness drives the real recorder, feedback and
drift code against in-process moto; the report reads the drift function's report items back.
"""

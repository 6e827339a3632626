"""`make bench`: latency, cold start, size, counted AWS requests and dollars per million events.

Modules: `counting` (the botocore hook), `costs` (prices and arithmetic), `fakeaws` (AWS answered
in-process), `warm`, `cold`, `footprint`, `e2e` (measurements), `models` (the comparison models),
`model_costs` (costs and targets from a run), `report` (docs/benchmarks.md), `cli` (the command).
Nothing here is imported by the Lambda functions.
"""

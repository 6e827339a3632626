"""Reliability under faults and load: fault injection through moto and the poller, the load run, DLQ redrive.

Seams: ``config`` (what to run), ``injection`` (botocore hooks that fail AWS calls on purpose),
``workload`` (the events), ``run`` (moto + poller + the real handlers), ``accounting`` (where every
event went, the invariants), ``report`` (figures), ``load`` (one warm process, memory and throughput),
``redrive`` (dead letters back to their source queue).
"""

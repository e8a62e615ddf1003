"""Side-by-side measurements of hotmesh_sync: ``python -m benchmarks --dsn DSN``.

Each benchmark provisions a fresh app schema, runs its workers in a process of
their own (the way a worker is deployed), and drops the schema afterwards.
The machine these run on is shared and noisy, so what the harness judges are
ratios measured in one run (durable steps per second against the commit rate
measured minutes before, hotmesh_sync against DBOS Transact on the same
server); absolute figures are context. See docs/benchmarks.md.
"""

"""Reliability and security suite: real uvicorn subprocesses of rendered variants under faults.

``python3 scripts/reliability.py`` runs it and rewrites ``RELIABILITY.md`` from the
figures each test leaves in ``.cache/reliability/``; ``python3 scripts/test.py`` runs
it with the rest of the template's tests.
"""

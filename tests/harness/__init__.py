"""What the template's tooling shares to drive a rendered service: the tests in ``tests/``,
the reliability suite in ``tests/reliability/`` and the benchmark harness in ``bench/``.

* ``render``: render the template once per set of answers; the rendered project;
* ``process``: a server subprocess on a free port, ready when it answers, stopped by PID;
* ``redis``: a private ``redis-server`` of the caller's own;
* ``ports``: free loopback ports.

Nothing here imports pytest or the template's test helpers, so ``bench/run.py`` runs
it as a plain script (it puts ``tests/`` on ``sys.path``, as pytest's ``pythonpath`` does).
Every process is stopped by its PID, never by name.
"""

from __future__ import annotations


class HarnessError(RuntimeError):
    """A render, a server or Redis could not be started or reached."""

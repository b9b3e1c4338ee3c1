"""``make bench``: CareCast against the simplest honest script doing the same work, on this machine.

Every scenario (``bench/scenarios/``) prepares its data once, then runs CareCast and its baseline alternately,
each run in a fresh process (so its peak memory is its own) against the local provider servers of
``tests/providers`` and a local feed server, all on 127.0.0.1. ``python -m bench`` prints the medians and writes
``bench/results.md``. Timing belongs here, never in ``make test``: the suite only runs ``python -m bench --quick``
to prove every scenario still works.
"""

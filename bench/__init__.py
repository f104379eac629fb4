"""Benchmarks of the models_sync app: sync cost against a naive baseline, and the read path.

Run ``python -m bench`` (or ``--quick``) from the project root; see ``bench/cli.py``.
Only ``bench.env`` may be imported before Django is set up; the other modules touch the ORM.
"""

from __future__ import annotations

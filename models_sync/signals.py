from __future__ import annotations

from django.dispatch import Signal

# Sent after a successful sync that changed something, once its transaction has committed.
# Receivers get ``run`` (SyncRun) and ``changes`` (a QuerySet of the run's ModelChange rows, by
# pk; lazy, so a receiver that needs only the run loads none of them).
models_changed = Signal()

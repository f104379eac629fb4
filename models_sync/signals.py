from __future__ import annotations

from django.dispatch import Signal

# Sent after a successful sync that changed something, once its transaction has committed.
# Receivers get ``run`` (SyncRun) and ``changes`` (list of ModelChange).
models_changed = Signal()

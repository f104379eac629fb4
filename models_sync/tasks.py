"""django-q2 entry points: tiny wrappers around ``services``."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from typing import Any

import requests
from django.core.serializers.json import DjangoJSONEncoder
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from . import catalogues, conf, services
from .models import SyncRun, WebhookDelivery

logger = logging.getLogger("models_sync")
SIGNATURE_HEADER = "X-Tetika-Signature"


def run_scheduled_sync() -> str:
    """The schedule's task: every catalogue in turn. A failure is recorded in its SyncRun."""
    outcomes = []
    for name in catalogues.configured():
        try:
            run = services.sync_models(trigger=SyncRun.Trigger.SCHEDULE, catalogue=name)
        except services.SyncError as exc:
            outcomes.append(f"{name}: {exc.run.status}: {exc.message}")
        else:
            outcomes.append(f"{name}: success, {run.free_count} free, {run.changes_count} changes")
    return "; ".join(outcomes)


def run_health_check() -> str:
    try:
        return str(services.check_health())
    except services.HealthAlreadyRunning as exc:
        return str(exc)


def run_probes() -> str:
    try:
        return str(services.probe_models())
    except services.HealthAlreadyRunning as exc:
        return str(exc)


def webhook_payload(run: SyncRun) -> dict[str, Any]:
    return {
        "event": "models.changed",
        "runId": run.pk,
        "timestamp": services.iso(run.started_at),
        "counts": {
            "fetched": run.fetched_count,
            "free": run.free_count,
            "added": run.added_count,
            "updated": run.updated_count,
            "unavailable": run.unavailable_count,
            "returned": run.restored_count,
            "changes": run.changes_count,
        },
        "changes": [
            {"kind": c.kind, "modelId": c.model_id, "before": c.before, "after": c.after}
            for c in run.changes.order_by("pk")
        ],
    }


def sign(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def enqueue_webhooks(run: SyncRun) -> None:
    from django_q.tasks import async_task

    for url in conf.webhooks():
        async_task("models_sync.tasks.deliver_webhook", url, run.pk, task_name=f"webhook-{run.pk}")


def _webhook_session() -> requests.Session:
    retry = Retry(
        total=max(conf.webhook_attempts() - 1, 0),
        allowed_methods=frozenset({"POST"}),
        status_forcelist=(429, 500, 502, 503, 504),
        backoff_factor=conf.backoff_factor(),
        raise_on_status=False,
        redirect=0,
    )
    session = requests.Session()
    session.mount("http://", HTTPAdapter(max_retries=retry))
    session.mount("https://", HTTPAdapter(max_retries=retry))
    return session


def deliver_webhook(url: str, run_id: int) -> bool:
    run = SyncRun.objects.get(pk=run_id)
    body = json.dumps(webhook_payload(run), cls=DjangoJSONEncoder).encode()
    headers = {"Content-Type": "application/json", "User-Agent": conf.user_agent()}
    if conf.webhook_secret():
        headers[SIGNATURE_HEADER] = sign(body, conf.webhook_secret())
    delivery = WebhookDelivery(run=run, url=url[:500])
    try:
        response = _webhook_session().post(
            url, data=body, headers=headers, timeout=conf.webhook_timeout(), allow_redirects=False
        )
        delivery.status_code = response.status_code
        delivery.delivered = 200 <= response.status_code < 300
        if not delivery.delivered:
            delivery.error = f"HTTP {response.status_code}"
    except requests.RequestException as exc:
        delivery.error = f"{type(exc).__name__}: {exc}"[:1000]
    delivery.save()
    if not delivery.delivered:
        logger.warning("[OpenRouter Sync] Webhook %s failed: %s", url, delivery.error)
    return delivery.delivered

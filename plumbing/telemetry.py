"""Metrics and logs for the worker and the API.

Metrics: with METRICS_PORT set, the Temporal SDK's runtime serves Prometheus
metrics on it: the SDK's own (workflow and activity task latencies, polls,
failures...) and the product's, recorded through the SDK's metric meter so
they land on the same endpoint:

    advocacy_events_applied{type}             events applied by journeys
    advocacy_events_ingested{type,source}     events accepted by the API
    advocacy_asks_sent{program}               ask emails sent
    advocacy_emails_sent{template}            every email sent
    advocacy_email_send_failures{reason}      sends that failed for good
    advocacy_template_render_errors{template}
    advocacy_rewards{status}                  ledger entries by status
    advocacy_reward_amount{status,currency}   and their amounts

Logs: LOG_FORMAT=json writes one JSON object per line with the customer id,
workflow id and ask id when known. PII (emails, names) is never logged: log
calls pass ids, never profiles.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import datetime, timezone
from typing import Any

from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig


def runtime_from_env() -> Runtime | None:
    """A runtime exporting Prometheus metrics on METRICS_PORT, or None (the SDK's default runtime)."""
    port = os.environ.get("METRICS_PORT", "").strip()
    if not port:
        return None
    if not port.isdigit():
        raise SystemExit(f"METRICS_PORT must be a port number, got {port!r}")
    return Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=f"0.0.0.0:{port}")))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat().replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        # The SDK attaches workflow and activity details to records from workflow.logger / activity.logger.
        info = getattr(record, "temporal_workflow", None) or getattr(record, "temporal_activity", None) or {}
        workflow_id = info.get("workflow_id")
        if workflow_id:
            entry["workflow_id"] = workflow_id
            if workflow_id.startswith("advocacy-"):
                entry["customer_id"] = workflow_id.removeprefix("advocacy-")
        for key in ("customer_id", "ask_id"):
            value = getattr(record, key, None)
            if value:
                entry[key] = value
        if info.get("activity_type"):
            entry["activity"] = info["activity_type"]
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if os.environ.get("LOG_FORMAT", "").lower() == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    logging.basicConfig(level=level, handlers=[handler], force=True)

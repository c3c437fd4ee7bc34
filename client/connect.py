"""One way to reach Temporal: the configured address and namespace, our data converter, and the runtime."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.runtime import Runtime

from plumbing.config import Settings
from plumbing.converter import data_converter


async def connect(settings: Settings, runtime: Runtime | None = None) -> Client:
    """A client for `settings`; long-running processes pass the runtime that exports their metrics."""
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=data_converter(),
        runtime=runtime,
    )

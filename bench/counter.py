"""The platform's ceiling for the ingest benchmark: a workflow that only counts its signals."""

from __future__ import annotations

from typing import Any

from temporalio import workflow


@workflow.defn
class SignalCounter:
    def __init__(self) -> None:
        self.count = 0

    @workflow.run
    async def run(self, customer_id: str) -> None:
        await workflow.wait_condition(lambda: False)

    @workflow.signal(name="customer_event")
    def customer_event(self, event: Any) -> None:
        self.count += 1

    @workflow.query
    def applied(self) -> int:
        return self.count

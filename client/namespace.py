"""The namespace a worker runs on must index the journey's search attributes: checked, and set up."""

from __future__ import annotations

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.client import Client

from workflows.model import SEARCH_ATTRIBUTE_KEYS, SEARCH_ATTRIBUTES


class NamespaceNotReady(Exception):
    """The namespace lacks search attributes the journeys set: every workflow task would fail."""


async def missing_search_attributes(client: Client) -> list[str]:
    """The journey's search attributes the namespace lacks, as `Name:Type`."""
    listed = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=client.namespace)
    )
    have = dict(listed.custom_attributes)
    return [
        f"{key.name}:{SEARCH_ATTRIBUTES[key.name]}"
        for key in SEARCH_ATTRIBUTE_KEYS
        if have.get(key.name) != int(key.indexed_value_type)
    ]


async def check_namespace(client: Client) -> None:
    """Refuse to run journeys on a namespace that would fail every workflow task for want of an attribute."""
    missing = await missing_search_attributes(client)
    if missing:
        raise NamespaceNotReady(
            f"namespace {client.namespace!r} lacks the search attributes {', '.join(missing)}; "
            "add them with `python starter.py setup` (idempotent)"
        )


def add_all_request() -> AddSearchAttributesRequest:
    """Every attribute at once, for a server that cannot list them (the time-skipping test server)."""
    return AddSearchAttributesRequest(
        search_attributes={
            key.name: IndexedValueType.ValueType(int(key.indexed_value_type)) for key in SEARCH_ATTRIBUTE_KEYS
        }
    )


async def setup_namespace(client: Client) -> list[str]:
    """Register the journey's search attributes that are missing; returns the ones added. Idempotent.

    An attribute that exists with another type is not changed (Temporal cannot): that is an error to fix by hand.
    """
    listed = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=client.namespace)
    )
    have = dict(listed.custom_attributes)
    clash = [
        f"{key.name} is {IndexedValueType.Name(have[key.name])}, not {SEARCH_ATTRIBUTES[key.name]}"
        for key in SEARCH_ATTRIBUTE_KEYS
        if key.name in have and have[key.name] != int(key.indexed_value_type)
    ]
    if clash:
        raise NamespaceNotReady(f"namespace {client.namespace!r}: {'; '.join(clash)}")
    wanted = {
        key.name: IndexedValueType.ValueType(int(key.indexed_value_type))
        for key in SEARCH_ATTRIBUTE_KEYS
        if key.name not in have
    }
    if wanted:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=client.namespace, search_attributes=wanted)
        )
    return sorted(wanted)

"""The namespace a worker runs on must index the journey's search attributes: checked, and set up."""

from __future__ import annotations

from typing import Any

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.client import Client
from temporalio.common import SearchAttributeKey

from workflows.model import SEARCH_ATTRIBUTE_KEYS, SEARCH_ATTRIBUTES


class NamespaceNotReady(Exception):
    """The namespace lacks search attributes the journeys set: every workflow task would fail."""


def _value_type(key: SearchAttributeKey[Any]) -> IndexedValueType.ValueType:
    return IndexedValueType.ValueType(int(key.indexed_value_type))


async def _registered(client: Client) -> dict[str, IndexedValueType.ValueType]:
    """The namespace's custom search attributes: name -> indexed value type."""
    listed = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=client.namespace)
    )
    return dict(listed.custom_attributes)


async def missing_search_attributes(client: Client) -> list[str]:
    """The journey's search attributes the namespace lacks, as `Name:Type`."""
    have = await _registered(client)
    return [
        f"{key.name}:{SEARCH_ATTRIBUTES[key.name]}"
        for key in SEARCH_ATTRIBUTE_KEYS
        if have.get(key.name) != _value_type(key)
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
    return AddSearchAttributesRequest(search_attributes={key.name: _value_type(key) for key in SEARCH_ATTRIBUTE_KEYS})


async def setup_namespace(client: Client) -> list[str]:
    """Register the journey's search attributes that are missing; returns the ones added. Idempotent.

    An attribute that exists with another type is not changed (Temporal cannot): that is an error to fix by hand.
    """
    have = await _registered(client)
    clash = [
        f"{key.name} is {IndexedValueType.Name(have[key.name])}, not {SEARCH_ATTRIBUTES[key.name]}"
        for key in SEARCH_ATTRIBUTE_KEYS
        if key.name in have and have[key.name] != _value_type(key)
    ]
    if clash:
        raise NamespaceNotReady(f"namespace {client.namespace!r}: {'; '.join(clash)}")
    wanted = {key.name: _value_type(key) for key in SEARCH_ATTRIBUTE_KEYS if key.name not in have}
    if wanted:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=client.namespace, search_attributes=wanted)
        )
    return sorted(wanted)

"""A worker refuses a namespace that lacks the journeys' search attributes; `starter.py setup` adds them."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.testing import WorkflowEnvironment

from client.namespace import NamespaceNotReady, check_namespace, missing_search_attributes, setup_namespace
from plumbing.config import ROOT
from plumbing.converter import data_converter
from tests.conftest import DEV_SERVER, STRONG_SECRET
from workflows.model import SEARCH_ATTRIBUTES


@pytest.mark.devserver
async def test_a_namespace_from_the_first_contract_is_refused_then_set_up_once() -> None:
    # The dev server (the time-skipping one cannot list search attributes), started without ours.
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=DEV_SERVER, dev_server_log_level="error", data_converter=data_converter()
    )
    try:
        client = env.client
        # Prepared from the first contract's five attributes: AdvocacyFlags came later.
        first_five = {
            name: IndexedValueType.INDEXED_VALUE_TYPE_INT
            if kind == "Int"
            else IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
            for name, kind in SEARCH_ATTRIBUTES.items()
            if name != "AdvocacyFlags"
        }
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=client.namespace, search_attributes=first_five)
        )
        assert await missing_search_attributes(client) == ["AdvocacyFlags:KeywordList"]
        with pytest.raises(NamespaceNotReady) as refused:
            await check_namespace(client)
        assert "AdvocacyFlags:KeywordList" in str(refused.value) and "starter.py setup" in str(refused.value)
        # `python worker.py` refuses to start there, with that message, instead of stalling every journey.
        address = client.service_client.config.target_host
        worker = subprocess.run(
            [sys.executable, "worker.py"], env={**os.environ, "TEMPORAL_ADDRESS": address, "UNSUBSCRIBE_SECRET": STRONG_SECRET},
            capture_output=True, text=True, timeout=60, cwd=ROOT,
        )  # fmt: skip
        assert worker.returncode == 2 and "AdvocacyFlags:KeywordList" in worker.stderr, worker.stderr
        setup = subprocess.run(
            [sys.executable, "starter.py", "setup"], env={**os.environ, "TEMPORAL_ADDRESS": address},
            capture_output=True, text=True, timeout=60, cwd=ROOT,
        )  # fmt: skip
        assert setup.returncode == 0 and '"search_attributes_added": ["AdvocacyFlags"]' in setup.stdout, setup.stderr
        assert await setup_namespace(client) == []  # idempotent
        await check_namespace(client)
    finally:
        await env.shutdown()


def test_the_worker_refuses_to_start_without_a_strong_unsubscribe_secret() -> None:
    """It signs the links the API verifies: checked before it connects anywhere."""
    env = {k: v for k, v in os.environ.items() if k != "UNSUBSCRIBE_SECRET"}
    for secret in (None, "change-me", "short-but-random-7f3a"):
        worker = subprocess.run(
            [sys.executable, "worker.py"], env={**env, **({"UNSUBSCRIBE_SECRET": secret} if secret else {})},
            capture_output=True, text=True, timeout=60, cwd=ROOT,
        )  # fmt: skip
        assert worker.returncode == 2 and "UNSUBSCRIBE_SECRET" in worker.stderr, worker.stderr

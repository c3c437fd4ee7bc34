from __future__ import annotations

from tests.conftest import Harness


async def test_promoter_gets_review_ask(harness: Harness) -> None:
    c = harness.cid("smoke")
    await harness.profile(c)
    await harness.send(c, "nps_response", {"score": 10})
    await harness.sleep(hours=1)
    state = await harness.state(c)
    print(state)
    assert state.last_nps == 10

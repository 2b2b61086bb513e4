"""option_marks on the paper broker through alpaca-py: the condors of one expiry share one
chain request, a stale chain is read again, a symbol missing from the chain falls back to a
latest-quote request - each request one READ slot of the account's budget, a cache hit none.

Requests are counted where alpaca-py sends them (the gateway's RateLimitObserver sees every
HTTP request): the paper broker's request log (AdminClient.requests) counts /v2 routes only,
and option market data is served under /v1beta1.
"""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from decimal import Decimal

import asyncpg
import pytest

from activities.options import OptionOrderActivities
from broker.budget import BrokerBudget
from broker.endpoint import BrokerEndpoint
from broker.option_orders import OptionOrdersGateway
from paperbroker.admin_client import AdminClient
from tests.integration.options.conftest import LONG_PUT, SHORT_CALL, SHORT_PUT, UNDERLYING
from trading.broker_budget import BudgetConfig
from trading.options.chain import OptionRight, format_occ_symbol
from trading.options.trade_models import OptionMarks, OptionQuotesRequest

pytestmark = pytest.mark.integration

FRIDAY = date(2024, 3, 8)  # the weekly expiry of the test session (Tuesday 2024-03-05)
NEXT_FRIDAY = date(2024, 3, 15)
# On the strike grid, so the broker quotes it, but outside the 20 strikes either side of the
# centre its chain lists.
OFF_CHAIN = format_occ_symbol(UNDERLYING, FRIDAY, OptionRight.CALL, Decimal(650))


def condor(low: int, expiry: date = FRIDAY) -> list[str]:
    """Puts at low and low+5, calls at low+60 and low+65 (all listed in the chain)."""
    return [
        format_occ_symbol(UNDERLYING, expiry, OptionRight.PUT, Decimal(low)),
        format_occ_symbol(UNDERLYING, expiry, OptionRight.PUT, Decimal(low + 5)),
        format_occ_symbol(UNDERLYING, expiry, OptionRight.CALL, Decimal(low + 60)),
        format_occ_symbol(UNDERLYING, expiry, OptionRight.CALL, Decimal(low + 65)),
    ]


class MarksHarness:
    """OptionOrderActivities as a worker builds them, on a gateway of their own (so its
    request count is theirs), with the module's budget."""

    def __init__(self, endpoint: BrokerEndpoint, pool: asyncpg.Pool, max_age: timedelta) -> None:
        self.gateway = OptionOrdersGateway(endpoint)
        self.pool = pool
        budget = BrokerBudget.for_endpoint(pool, endpoint, BudgetConfig())
        self.activities = OptionOrderActivities(self.gateway, budget, marks_max_age=max_age)

    async def marks(self, symbols: list[str]) -> OptionMarks:
        return await self.activities.option_marks(OptionQuotesRequest(symbols=symbols))

    @property
    def requests(self) -> int:
        """HTTP requests the activities sent to the broker."""
        return self.gateway.rate_limits.requests_sent

    async def slots(self) -> int:
        """Budget slots option_marks took (READ), every test of the module."""
        spent = await self.pool.fetchval(
            "SELECT coalesce(sum(slots), 0) FROM broker_calls "
            "WHERE call = 'option_marks' AND priority = 'read'"
        )
        return int(spent)


def quoted(marks: OptionMarks) -> dict[str, tuple[Decimal, Decimal]]:
    return {q.symbol: (q.bid, q.ask) for q in marks.quotes}


async def test_concurrent_marks_of_one_expiry_cost_one_chain_request(
    broker_endpoint: BrokerEndpoint, pool: asyncpg.Pool, broker_admin: AdminClient
) -> None:
    harness = MarksHarness(broker_endpoint, pool, timedelta(seconds=30))
    lows = range(420, 520, 5)  # 20 condors, 80 distinct legs of one expiry
    slots_before = await harness.slots()

    answers = await asyncio.gather(*(harness.marks(condor(low)) for low in lows))

    assert harness.requests == 1
    assert await harness.slots() - slots_before == 1
    reference = OptionOrdersGateway(broker_endpoint)
    for low, marks in zip(lows, answers, strict=True):
        assert [q.symbol for q in marks.quotes] == condor(low)
        assert all(q.ask > q.bid >= 0 for q in marks.quotes)
        direct = reference.latest_quotes(condor(low))
        assert quoted(marks) == quoted(direct)  # the chain's quotes are the latest quotes
        assert (marks.as_of, marks.session_date) == (direct.as_of, direct.session_date)

    # Marks asked again within max_age are served from the poll: no request, no slot.
    await asyncio.gather(*(harness.marks(condor(low)) for low in lows))
    assert harness.requests == 1
    assert await harness.slots() - slots_before == 1


async def test_each_expiry_is_one_chain_request(
    broker_endpoint: BrokerEndpoint, pool: asyncpg.Pool, broker_admin: AdminClient
) -> None:
    harness = MarksHarness(broker_endpoint, pool, timedelta(seconds=30))
    asks = [condor(low, expiry) for expiry in (FRIDAY, NEXT_FRIDAY) for low in (440, 460, 480)]

    answers = await asyncio.gather(*(harness.marks(legs) for legs in asks))

    assert harness.requests == 2
    assert all(len(marks.quotes) == 4 for marks in answers)


async def test_a_stale_chain_is_read_again(
    broker_endpoint: BrokerEndpoint, pool: asyncpg.Pool, broker_admin: AdminClient
) -> None:
    max_age = timedelta(seconds=0.5)
    harness = MarksHarness(broker_endpoint, pool, max_age)
    legs = [LONG_PUT, SHORT_PUT, SHORT_CALL]
    first = await harness.marks(legs)
    assert harness.requests == 1

    broker_admin.set_option_iv(UNDERLYING, shift=0.10)
    cached = await harness.marks(legs)
    assert harness.requests == 1
    assert quoted(cached) == quoted(first)  # still the cached read

    await asyncio.sleep(max_age.total_seconds() + 0.1)
    fresh = await harness.marks(legs)
    assert harness.requests == 2
    assert quoted(fresh) == quoted(OptionOrdersGateway(broker_endpoint).latest_quotes(legs))
    assert all(
        now.ask > before.ask for now, before in zip(fresh.quotes, first.quotes, strict=True)
    )  # the volatility rise priced in


async def test_a_symbol_missing_from_the_chain_falls_back_to_a_latest_quote(
    broker_endpoint: BrokerEndpoint, pool: asyncpg.Pool, broker_admin: AdminClient
) -> None:
    reference = OptionOrdersGateway(broker_endpoint)
    assert OFF_CHAIN not in reference.chain_snapshots(UNDERLYING, FRIDAY, FRIDAY)
    harness = MarksHarness(broker_endpoint, pool, timedelta(seconds=30))
    slots_before = await harness.slots()
    legs = [LONG_PUT, SHORT_PUT, SHORT_CALL, OFF_CHAIN]

    marks = await harness.marks(legs)

    assert [q.symbol for q in marks.quotes] == legs
    assert quoted(marks) == quoted(reference.latest_quotes(legs))
    assert harness.requests == 2  # the chain, then one latest-quote request for OFF_CHAIN
    assert await harness.slots() - slots_before == 2
    again = await harness.marks(legs)  # the fallback's answer is kept like the chain's
    assert quoted(again) == quoted(marks)
    assert harness.requests == 2

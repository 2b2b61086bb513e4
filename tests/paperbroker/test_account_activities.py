"""GET /v2/account/activities through alpaca-py's RESTClient.get: the option events at expiry.

An iron condor (500/510 puts, 530/535 calls, expiring Friday 2024-03-08) is settled at the
close with SPY at 540: the long 535 call is exercised (OPEXC), the short 530 call assigned
(OPASN), both puts expire (OPEXP), and the shares move at the strikes (OPTRD). The route answers
them as Alpaca's NonTradeActivity objects, filtered, ordered and paged as Alpaca documents.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.models import NonTradeActivity

from paperbroker.admin_client import AdminClient
from tests.paperbroker.test_options_orders import (
    AFTER_EXPIRY_CLOSE,
    LONG_CALL,
    LONG_PUT,
    SHORT_CALL,
    SHORT_PUT,
    iron_condor,
)

OPTION_EVENTS = "OPEXC,OPASN,OPEXP"


def activities(trading: TradingClient, path: str = "", **params: Any) -> list[dict[str, Any]]:
    """GET /v2/account/activities[/{type}] as alpaca-py's RESTClient sends it."""
    answer: Any = trading.get(f"/account/activities{path}", params or None)
    assert isinstance(answer, list)
    return answer


@pytest.fixture
def settled(trading: TradingClient, sim: AdminClient) -> TradingClient:
    """The condor held through its expiry's close with SPY at 540."""
    trading.submit_order(iron_condor(1, limit=1.00))
    sim.sync()
    sim.set_price("SPY", price=540, volatility=0)
    sim.set_clock(AFTER_EXPIRY_CLOSE)
    return trading


def test_no_option_event_yet_answers_an_empty_list(trading: TradingClient) -> None:
    assert activities(trading, activity_types=OPTION_EVENTS) == []


def test_expiry_at_the_close_answers_exercise_assignment_and_expiry(
    settled: TradingClient,
) -> None:
    found = activities(settled, activity_types=OPTION_EVENTS)
    parsed = [NonTradeActivity(**row) for row in found]  # alpaca-py reads every row
    by_symbol = {a.symbol: (a.activity_type.value, a.qty) for a in parsed}
    assert by_symbol == {
        LONG_CALL: ("OPEXC", -1),
        SHORT_CALL: ("OPASN", 1),
        LONG_PUT: ("OPEXP", -1),
        SHORT_PUT: ("OPEXP", 1),
    }
    assert {str(a.date) for a in parsed} == {"2024-03-08"}
    assert all("::" in a.id for a in parsed)
    ids = [a.id for a in parsed]
    assert ids == sorted(ids, reverse=True)  # direction defaults to desc
    assert all(row["net_amount"] == "0" and isinstance(row["qty"], str) for row in found)


def test_the_shares_moved_carry_their_cash(settled: TradingClient) -> None:
    moved = {row["qty"]: row for row in activities(settled, "/OPTRD")}
    assert set(moved) == {"100", "-100"}
    assert Decimal(moved["100"]["net_amount"]) == -535 * 100  # exercised: bought at 535
    assert Decimal(moved["-100"]["net_amount"]) == 530 * 100  # assigned: sold at 530
    assert Decimal(moved["-100"]["price"]) == 530


def test_filters_by_type_date_and_time(settled: TradingClient) -> None:
    expired = activities(settled, "/OPEXP")
    assert {row["symbol"] for row in expired} == {LONG_PUT, SHORT_PUT}
    assert activities(settled, activity_types="OPASN")[0]["symbol"] == SHORT_CALL
    assert len(activities(settled, activity_types=OPTION_EVENTS, date="2024-03-08")) == 4
    assert activities(settled, activity_types=OPTION_EVENTS, date="2024-03-07") == []
    assert activities(settled, activity_types=OPTION_EVENTS, until="2024-03-08T20:59:00Z") == []
    assert len(activities(settled, activity_types=OPTION_EVENTS, after="2024-03-08T20:59:00Z")) == 4
    assert activities(settled, activity_types=OPTION_EVENTS, after="2024-03-08T21:01:00Z") == []
    assert activities(settled, activity_types="FILL") == []  # fills are not recorded here


def test_pages_continue_after_the_token_in_either_direction(settled: TradingClient) -> None:
    for direction in ("desc", "asc"):
        every = activities(settled, activity_types=OPTION_EVENTS, direction=direction)
        first = activities(settled, activity_types=OPTION_EVENTS, direction=direction, page_size=3)
        rest = activities(
            settled,
            activity_types=OPTION_EVENTS,
            direction=direction,
            page_size=3,
            page_token=first[-1]["id"],
        )
        assert len(first) == 3 and len(rest) == 1
        assert [row["id"] for row in first + rest] == [row["id"] for row in every]
    ids = [row["id"] for row in activities(settled, direction="asc")]
    assert ids == sorted(ids) and len(ids) == 6  # four option events, two share moves


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("", {"activity_types": "OPEXC,NOPE"}),
        ("/NOPE", {}),
        ("", {"direction": "sideways"}),
        ("", {"page_size": "101"}),
        ("", {"date": "yesterday"}),
        ("", {"date": "2024-03-08", "after": "2024-03-07"}),
    ],
)
def test_bad_queries_are_refused_with_alpacas_validation_error(
    trading: TradingClient, path: str, params: dict[str, str]
) -> None:
    with pytest.raises(APIError) as refused:
        trading.get(f"/account/activities{path}", params)
    assert refused.value.status_code == 422
    assert refused.value.code == 40010001

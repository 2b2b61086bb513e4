"""Options contracts and options market data through alpaca-py's own clients."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import requests
from alpaca.common.exceptions import APIError
from alpaca.data.historical.option import OptionHistoricalDataClient
from alpaca.data.requests import (
    OptionBarsRequest,
    OptionChainRequest,
    OptionLatestQuoteRequest,
    OptionLatestTradeRequest,
    OptionSnapshotRequest,
)
from alpaca.data.timeframe import TimeFrame
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import AssetStatus, ContractType
from alpaca.trading.requests import GetOptionContractsRequest

from paperbroker.admin_client import AdminClient, AdminError
from paperbroker.options_contracts import parse_occ
from paperbroker.options_pricing import is_on_option_grid
from paperbroker.testing import RunningBroker

pytestmark = pytest.mark.integration

# The root conftest's SESSION_START: Tuesday 2024-03-05, 10:30 New York.
TODAY = date(2024, 3, 5)


@pytest.fixture
def options(paper_broker: RunningBroker, sim: AdminClient) -> OptionHistoricalDataClient:
    """alpaca-py OptionHistoricalDataClient pointed at the broker."""
    return OptionHistoricalDataClient(
        paper_broker.key_id, paper_broker.secret_key, url_override=paper_broker.data_url
    )


def _raw(broker: RunningBroker, path: str, **params: Any) -> requests.Response:
    headers = {"APCA-API-KEY-ID": broker.key_id, "APCA-API-SECRET-KEY": broker.secret_key}
    return requests.get(f"{broker.data_url}{path}", params=params, headers=headers, timeout=10)


def _all_contracts(trading: TradingClient, **filters: Any) -> tuple[list[Any], int]:
    contracts: list[Any] = []
    pages, token = 0, None
    while True:
        answer: Any = trading.get_option_contracts(
            GetOptionContractsRequest(page_token=token, **filters)
        )
        contracts.extend(answer.option_contracts or [])
        pages += 1
        token = answer.next_page_token
        if token is None:
            return contracts, pages


def test_contracts_page_through_the_whole_chain(trading: TradingClient) -> None:
    contracts, pages = _all_contracts(trading, underlying_symbols=["AAPL"], limit=250)
    assert pages > 2
    symbols = [c.symbol for c in contracts]
    assert len(symbols) == len(set(symbols))
    assert {c.underlying_symbol for c in contracts} == {"AAPL"}
    assert {c.type for c in contracts} == {ContractType.CALL, ContractType.PUT}
    expiries = sorted({c.expiration_date for c in contracts})
    # Weeklies and monthlies; Good Friday 2024-03-29 moves that week's expiry to Thursday.
    assert date(2024, 3, 8) in expiries and date(2024, 3, 28) in expiries
    assert date(2024, 5, 17) in expiries and max(expiries) <= TODAY + timedelta(days=90)
    first = contracts[0]
    assert first.status is AssetStatus.ACTIVE and first.tradable and first.size == "100"
    assert first.root_symbol == "AAPL" and first.style.value == "american"
    assert first.open_interest is not None and first.close_price is not None
    assert first.close_price_date == date(2024, 3, 4)
    again, _ = _all_contracts(trading, underlying_symbols=["AAPL"], limit=10_000)
    assert [c.symbol for c in again] == symbols  # deterministic, one page or many


def test_contract_filters(trading: TradingClient) -> None:
    answer: Any = trading.get_option_contracts(
        GetOptionContractsRequest(
            underlying_symbols=["SPY", "KO"],
            type=ContractType.PUT,
            expiration_date=date(2024, 3, 15),
            strike_price_gte="500",
            strike_price_lte="530",
        )
    )
    contracts = answer.option_contracts
    assert contracts and answer.next_page_token is None
    assert {c.underlying_symbol for c in contracts} == {"SPY"}
    assert all(c.type is ContractType.PUT and 500 <= c.strike_price <= 530 for c in contracts)
    assert {c.expiration_date for c in contracts} == {date(2024, 3, 15)}
    default: Any = trading.get_option_contracts(GetOptionContractsRequest())
    assert len(default.option_contracts) == 100 and default.next_page_token is not None


def test_one_contract_by_symbol_and_by_id(trading: TradingClient) -> None:
    listing: Any = trading.get_option_contracts(
        GetOptionContractsRequest(underlying_symbols=["MSFT"], limit=5)
    )
    wanted = listing.option_contracts[3]
    by_symbol: Any = trading.get_option_contract(wanted.symbol)
    by_id: Any = trading.get_option_contract(wanted.id)
    assert by_symbol == by_id == wanted
    occ = parse_occ(wanted.symbol)
    assert (occ.underlying, occ.expiry, float(occ.strike)) == (
        "MSFT",
        wanted.expiration_date,
        wanted.strike_price,
    )
    for missing in ("MSFT240308C00411100", "ZZZZ240308C00100000", "not-a-contract"):
        with pytest.raises(APIError) as error:
            trading.get_option_contract(missing)
        assert error.value.status_code == 404


def test_bad_contract_filters_are_unprocessable(
    paper_broker: RunningBroker, sim: AdminClient
) -> None:
    url = f"{paper_broker.trading_url}/v2/options/contracts"
    headers = {
        "APCA-API-KEY-ID": paper_broker.key_id,
        "APCA-API-SECRET-KEY": paper_broker.secret_key,
    }
    for params in ({"type": "straddle"}, {"expiration_date": "soon"}, {"limit": "0"}):
        answer = requests.get(url, params=params, headers=headers, timeout=10)
        assert answer.status_code == 422, params


def _atm(trading: TradingClient, underlying: str, right: ContractType) -> str:
    answer: Any = trading.get_option_contracts(
        GetOptionContractsRequest(
            underlying_symbols=[underlying], type=right, expiration_date=date(2024, 4, 19)
        )
    )
    strikes = [c for c in answer.option_contracts]
    return str(strikes[len(strikes) // 2].symbol)


def test_latest_quote_and_trade(
    trading: TradingClient, options: OptionHistoricalDataClient
) -> None:
    call = _atm(trading, "AAPL", ContractType.CALL)
    quotes: Any = options.get_option_latest_quote(
        OptionLatestQuoteRequest(symbol_or_symbols=[call, "AAPL240419C09990000"])
    )
    assert list(quotes) == [call]  # an unlisted strike is left out
    quote = quotes[call]
    assert 0 < quote.bid_price < quote.ask_price
    assert is_on_option_grid(Decimal(str(quote.bid_price)))
    assert is_on_option_grid(Decimal(str(quote.ask_price)))
    assert quote.timestamp == datetime(2024, 3, 5, 15, 30, tzinfo=UTC)
    trades: Any = options.get_option_latest_trade(OptionLatestTradeRequest(symbol_or_symbols=call))
    assert quote.bid_price <= trades[call].price <= quote.ask_price
    with pytest.raises(APIError) as error:
        options.get_option_latest_quote(OptionLatestQuoteRequest(symbol_or_symbols="AAPL"))
    assert error.value.status_code == 400


def test_snapshots_carry_greeks_and_iv(
    trading: TradingClient, options: OptionHistoricalDataClient
) -> None:
    call, put = _atm(trading, "SPY", ContractType.CALL), _atm(trading, "SPY", ContractType.PUT)
    snaps: Any = options.get_option_snapshot(OptionSnapshotRequest(symbol_or_symbols=[call, put]))
    c, p = snaps[call], snaps[put]
    assert 0 < c.greeks.delta < 1 and -1 < p.greeks.delta < 0
    assert c.greeks.gamma > 0 and c.greeks.vega > 0 and c.greeks.theta < 0
    assert c.greeks.rho > 0 > p.greeks.rho
    assert 0.05 < c.implied_volatility < 1.0
    assert c.latest_quote.bid_price < c.latest_quote.ask_price


def test_chain_snapshot_filters_and_pages(
    paper_broker: RunningBroker, options: OptionHistoricalDataClient
) -> None:
    chain: Any = options.get_option_chain(
        OptionChainRequest(
            underlying_symbol="AAPL",
            type=ContractType.CALL,
            expiration_date=date(2024, 3, 15),
        )
    )
    assert len(chain) == 41
    strikes = sorted(chain.items(), key=lambda item: parse_occ(item[0]).strike)
    deltas = [snap.greeks.delta for _, snap in strikes]
    assert deltas == sorted(deltas, reverse=True)  # calls: delta falls as the strike rises
    asks = [snap.latest_quote.ask_price for _, snap in strikes]
    assert asks == sorted(asks, reverse=True)
    assert all(snap.implied_volatility > 0 for _, snap in strikes)
    everything: Any = options.get_option_chain(OptionChainRequest(underlying_symbol="AAPL"))
    assert len(everything) == 8 * 2 * 41  # 8 expiries, calls and puts, 41 strikes
    first = _raw(paper_broker, "/v1beta1/options/snapshots/AAPL", limit=30).json()
    assert len(first["snapshots"]) == 30 and first["next_page_token"]
    second = _raw(
        paper_broker,
        "/v1beta1/options/snapshots/AAPL",
        limit=30,
        page_token=first["next_page_token"],
    ).json()
    assert not set(first["snapshots"]) & set(second["snapshots"])
    assert options.get_option_chain(OptionChainRequest(underlying_symbol="NOPE")) == {}


def test_bars_follow_the_underlying(
    trading: TradingClient, options: OptionHistoricalDataClient, sim: AdminClient
) -> None:
    call, put = _atm(trading, "AAPL", ContractType.CALL), _atm(trading, "AAPL", ContractType.PUT)
    minute: Any = options.get_option_bars(
        OptionBarsRequest(
            symbol_or_symbols=[call, put],
            timeframe=TimeFrame.Minute,
            start=datetime(2024, 3, 4, tzinfo=UTC),
        )
    )
    calls = minute.data[call]
    # Regular-session minutes only: all of Monday's 390 and Tuesday's first hour.
    assert len(calls) == 390 + 60
    assert all(b.low <= min(b.open, b.close) and b.high >= max(b.open, b.close) for b in calls)
    # The last bar closes where the latest print is: both price the same path at 10:30.
    trades: Any = options.get_option_latest_trade(OptionLatestTradeRequest(symbol_or_symbols=call))
    assert calls[-1].close == trades[call].price
    puts = minute.data[put]
    up = [b.close > a.close for a, b in itertools.pairwise(calls)]
    down = [b.close < a.close for a, b in itertools.pairwise(puts)]
    assert sum(u and d for u, d in zip(up, down, strict=True)) > len(up) // 4  # they move apart
    daily: Any = options.get_option_bars(
        OptionBarsRequest(
            symbol_or_symbols=call, timeframe=TimeFrame.Day, start=datetime(2024, 2, 26, tzinfo=UTC)
        )
    )
    assert [b.timestamp.date() for b in daily.data[call]] == [
        date(2024, 2, 26),
        date(2024, 2, 27),
        date(2024, 2, 28),
        date(2024, 2, 29),
        date(2024, 3, 1),
        date(2024, 3, 4),
        date(2024, 3, 5),
    ]


def test_an_underlying_jump_and_an_iv_move_reprice_the_chain(
    trading: TradingClient, options: OptionHistoricalDataClient, sim: AdminClient
) -> None:
    call, put = _atm(trading, "NVDA", ContractType.CALL), _atm(trading, "NVDA", ContractType.PUT)

    def mids() -> tuple[float, float, float]:
        snaps: Any = options.get_option_snapshot(
            OptionSnapshotRequest(symbol_or_symbols=[call, put])
        )
        q = snaps[call].latest_quote, snaps[put].latest_quote
        return (
            (q[0].bid_price + q[0].ask_price) / 2,
            (q[1].bid_price + q[1].ask_price) / 2,
            snaps[call].implied_volatility,
        )

    call_before, put_before, iv_before = mids()
    sim.set_option_iv("NVDA", iv=0.9)
    call_rich, put_rich, iv_rich = mids()
    assert call_rich > call_before and put_rich > put_before and iv_rich > iv_before
    assert sim.set_option_iv("NVDA", shift=-0.3) == pytest.approx(0.6)
    sim.advance(60)
    sim.set_price("NVDA", 140)
    call_up, put_up, _ = mids()
    assert call_up > call_rich and put_up < put_rich
    with pytest.raises(AdminError) as error:
        sim.set_option_iv("NOPE", iv=0.3)
    assert error.value.status == 404

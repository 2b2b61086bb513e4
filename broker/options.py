"""Option chains through alpaca-py, paid for from the account's broker-call budget.

`AlpacaOptionsGateway` reads the contracts (expiry, strike, right, open interest) with
TradingClient.get_option_contracts and their quotes, greeks and implied volatility with
OptionHistoricalDataClient.get_option_chain (the per-underlying snapshots), and maps both into
`trading.options.chain.OptionChain`. Like AlpacaGateway it works unchanged against Alpaca and
the local paper broker (only the URLs differ) and turns SDK errors into broker errors.

`MeteredOptions` is how callers read it: every read first takes its slot from the same
BrokerBudget the MeteredGateway spends (at READ priority), and the pages beyond the first are
charged afterwards, so options reads count in the account's minute like every other call. A
429 on the contracts listing (the trading API) makes every process wait for the reset; a 429
on market data does not, as in MeteredGateway.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from functools import partial
from typing import Any, TypeVar

from alpaca.data.historical.option import OptionHistoricalDataClient
from alpaca.data.requests import OptionChainRequest
from alpaca.trading.requests import GetOptionContractsRequest
from pydantic import ValidationError

from broker.alpaca import CONNECT_TIMEOUT_S, READ_TIMEOUT_S, hardened_clients, mapped_call
from broker.endpoint import BrokerEndpoint
from broker.metered import Metered
from broker.rate_limits import RateLimitObserver
from trading.broker_budget import Priority
from trading.models import Frozen
from trading.options.chain import OptionChain, OptionContractQuote, OptionRight

logger = logging.getLogger(__name__)
T = TypeVar("T")

CONTRACTS_PAGE = 10_000  # Alpaca's maximum page of /v2/options/contracts
# Without an expiry filter Alpaca lists only contracts expiring by the next weekend, so a
# listing always names its window; 90 days covers the weeklies and the next monthlies.
CHAIN_HORIZON_DAYS = 90
CONTRACTS_CALL = "option_contracts"
CHAIN_CALL = "option_chain"


class ListedContract(Frozen):
    """One listed contract as the trading API names it: symbol, expiry, right, strike, OI."""

    symbol: str
    underlying: str
    expiry: date
    right: OptionRight
    strike: Decimal
    open_interest: int = 0


def _decimal(value: Any) -> Decimal | None:
    return None if value is None or value == "" else Decimal(str(value))


def listed_contract(contract: Any) -> ListedContract:
    """alpaca-py OptionContract -> ListedContract (open interest 0 when Alpaca has none)."""
    strike = Decimal(str(contract.strike_price)).normalize()
    return ListedContract(
        symbol=contract.symbol,
        underlying=contract.underlying_symbol,
        expiry=contract.expiration_date,
        right=OptionRight(str(getattr(contract.type, "value", contract.type))),
        strike=strike,
        open_interest=int(Decimal(str(contract.open_interest or 0))),
    )


def quoted_contract(listed: ListedContract, snapshot: Any | None) -> OptionContractQuote | None:
    """A listed contract with its snapshot's quote, greeks and IV (None for a crossed quote).

    A contract without a snapshot or quote is kept with bid = ask = 0: listed, but no market.
    """
    quote = getattr(snapshot, "latest_quote", None)
    greeks = getattr(snapshot, "greeks", None)
    bid = _decimal(getattr(quote, "bid_price", None)) or Decimal(0)
    ask = _decimal(getattr(quote, "ask_price", None)) or Decimal(0)
    try:
        return OptionContractQuote(
            symbol=listed.symbol,
            underlying=listed.underlying,
            expiry=listed.expiry,
            right=listed.right,
            strike=listed.strike,
            bid=bid,
            ask=ask,
            mid=(bid + ask) / 2,
            delta=_decimal(getattr(greeks, "delta", None)),
            gamma=_decimal(getattr(greeks, "gamma", None)),
            theta=_decimal(getattr(greeks, "theta", None)),
            vega=_decimal(getattr(greeks, "vega", None)),
            iv=_decimal(getattr(snapshot, "implied_volatility", None)),
            open_interest=listed.open_interest,
        )
    except ValidationError as exc:
        logger.info("option %s left out of the chain: %s", listed.symbol, exc.errors()[0]["msg"])
        return None


def build_chain(
    underlying: str,
    underlying_price: Decimal,
    as_of: datetime,
    listed: list[ListedContract],
    snapshots: dict[str, Any],
    expiry: date | None = None,
) -> OptionChain:
    """The chain of the listed contracts (of one expiry, if given), quotes joined by symbol."""
    chosen = [c for c in listed if expiry is None or c.expiry == expiry]
    quoted = (quoted_contract(c, snapshots.get(c.symbol)) for c in chosen)
    return OptionChain(
        underlying=underlying,
        underlying_price=underlying_price,
        as_of=as_of,
        contracts=[q for q in quoted if q is not None],
    )


class AlpacaOptionsGateway:
    """Option contracts and chain snapshots over alpaca-py's TradingClient and options client."""

    def __init__(
        self,
        endpoint: BrokerEndpoint,
        *,
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
        read_timeout_s: float = READ_TIMEOUT_S,
        rate_limits: RateLimitObserver | None = None,
    ) -> None:
        """`rate_limits`: count this gateway's requests with another's (one run, one count)."""
        self.rate_limits = rate_limits or RateLimitObserver()
        self._trading, self._options = hardened_clients(
            endpoint,
            OptionHistoricalDataClient,
            self.rate_limits,
            connect_timeout_s,
            read_timeout_s,
        )

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        return mapped_call(what, fn)

    def list_contracts(self, underlying: str, start: date, end: date) -> list[ListedContract]:
        """The active contracts of an underlying expiring in [start, end], every page."""
        found: list[ListedContract] = []
        token: str | None = None
        while True:
            request = GetOptionContractsRequest(
                underlying_symbols=[underlying],
                expiration_date_gte=start,
                expiration_date_lte=end,
                limit=CONTRACTS_PAGE,
                page_token=token,
            )
            page: Any = self._call(
                f"get_option_contracts {underlying}",
                partial(self._trading.get_option_contracts, request),
            )
            found.extend(listed_contract(c) for c in page.option_contracts or [])
            token = page.next_page_token
            if not token:
                return found

    def chain_snapshots(self, underlying: str, start: date, end: date) -> dict[str, Any]:
        """Quote, greeks and IV by OCC symbol for the underlying's expiries in [start, end]."""
        request = OptionChainRequest(
            underlying_symbol=underlying, expiration_date_gte=start, expiration_date_lte=end
        )
        snapshots: Any = self._call(
            f"get_option_chain {underlying}", lambda: self._options.get_option_chain(request)
        )
        return dict(snapshots)


class MeteredOptions(Metered[AlpacaOptionsGateway]):
    """AlpacaOptionsGateway's reads, async, each paid for from the account-wide budget first
    (broker/metered.py's metering: the same budget, counts, spans and patience as every call)."""

    async def list_contracts(self, underlying: str, start: date, end: date) -> list[ListedContract]:
        """The underlying's active contracts expiring in [start, end] (pages charged)."""
        return await self._call(
            Priority.READ,
            CONTRACTS_CALL,
            lambda: self._gateway.list_contracts(underlying, start, end),
        )

    async def chain_snapshots(self, underlying: str, start: date, end: date) -> dict[str, Any]:
        """Snapshots (quote, greeks, IV) of the underlying's expiries in [start, end]."""
        return await self._call(
            Priority.READ, CHAIN_CALL, lambda: self._gateway.chain_snapshots(underlying, start, end)
        )

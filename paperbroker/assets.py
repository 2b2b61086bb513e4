"""The tradable universe: default symbols with names, listing exchanges and seed prices."""

from __future__ import annotations

import hashlib
from decimal import Decimal
from uuid import NAMESPACE_URL, UUID, uuid5

from pydantic import BaseModel

DEFAULT_UNIVERSE: dict[str, tuple[str, str, str]] = {
    "AAPL": ("Apple Inc. Common Stock", "NASDAQ", "190.00"),
    "MSFT": ("Microsoft Corporation Common Stock", "NASDAQ", "410.00"),
    "AMZN": ("Amazon.com, Inc. Common Stock", "NASDAQ", "180.00"),
    "GOOGL": ("Alphabet Inc. Class A Common Stock", "NASDAQ", "165.00"),
    "META": ("Meta Platforms, Inc. Class A Common Stock", "NASDAQ", "500.00"),
    "NVDA": ("NVIDIA Corporation Common Stock", "NASDAQ", "120.00"),
    "TSLA": ("Tesla, Inc. Common Stock", "NASDAQ", "250.00"),
    "AMD": ("Advanced Micro Devices, Inc. Common Stock", "NASDAQ", "150.00"),
    "JPM": ("JPMorgan Chase & Co. Common Stock", "NYSE", "200.00"),
    "KO": ("Coca-Cola Company (The) Common Stock", "NYSE", "62.00"),
    "F": ("Ford Motor Company Common Stock", "NYSE", "11.50"),
    "SPY": ("SPDR S&P 500 ETF Trust", "ARCA", "520.00"),
    "QQQ": ("Invesco QQQ Trust, Series 1", "NASDAQ", "440.00"),
    "IWM": ("iShares Russell 2000 ETF", "ARCA", "205.00"),
}


class Asset(BaseModel):
    """A us_equity asset as GET /v2/assets describes it."""

    id: UUID
    symbol: str
    name: str
    exchange: str
    seed_price: Decimal


def asset_id_for(symbol: str) -> UUID:
    """Return a stable asset id for `symbol`."""
    return uuid5(NAMESPACE_URL, f"paperbroker/asset/{symbol}")


def make_asset(symbol: str, price: Decimal | None = None) -> Asset:
    """Build the asset for `symbol`, using the default table when it knows the symbol."""
    symbol = symbol.upper()
    name, exchange, default_price = DEFAULT_UNIVERSE.get(
        symbol, (f"{symbol} Common Stock", "NASDAQ", "")
    )
    if price is None:
        if default_price:
            price = Decimal(default_price)
        else:
            # Unknown symbols get a stable pseudo-random price between $10 and $300.
            digest = hashlib.sha256(symbol.encode()).digest()
            price = Decimal(10 + int.from_bytes(digest[:4], "big") % 29000 / 100).quantize(
                Decimal("0.01")
            )
    return Asset(
        id=asset_id_for(symbol), symbol=symbol, name=name, exchange=exchange, seed_price=price
    )


def asset_json(asset: Asset) -> dict[str, object]:
    """Render an asset like Alpaca's /v2/assets."""
    return {
        "id": str(asset.id),
        "class": "us_equity",
        "exchange": asset.exchange,
        "symbol": asset.symbol,
        "name": asset.name,
        "status": "active",
        "tradable": True,
        "marginable": True,
        "maintenance_margin_requirement": 30,
        "margin_requirement_long": "30",
        "margin_requirement_short": "100",
        "shortable": True,
        "easy_to_borrow": True,
        "fractionable": True,
        "attributes": [],
    }

"""Which broker the settings select, and that credentials stay secret."""

from __future__ import annotations

from pathlib import Path

from broker.endpoint import broker_endpoint
from settings import LIVE_CONFIRMATION, ROOT, Settings


def test_keys_select_alpaca_paper_by_default() -> None:
    endpoint = broker_endpoint(Settings(alpaca_api_key="AKID1", alpaca_secret_key="s3cret"))
    assert endpoint.trading_url == "https://paper-api.alpaca.markets"
    assert endpoint.stream_url == "wss://paper-api.alpaca.markets/stream"
    assert endpoint.paper and not endpoint.local
    assert "s3cret" not in repr(endpoint)


def test_live_mode_selects_live_urls_and_overrides_win() -> None:
    live = broker_endpoint(
        Settings(
            alpaca_api_key="AKID1",
            alpaca_secret_key="s3cret",
            alpaca_paper=False,
            trading_mode="live",
            trading_live_confirm=LIVE_CONFIRMATION,
        )
    )
    assert live.trading_url == "https://api.alpaca.markets" and not live.paper
    custom = broker_endpoint(
        Settings(
            alpaca_api_key="AKID1",
            alpaca_secret_key="s3cret",
            alpaca_trading_url="http://proxy.internal:9000/",
        )
    )
    assert custom.trading_url == "http://proxy.internal:9000"


def test_no_keys_select_the_local_paper_broker(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path, dev_config=ROOT / "temporal-dev.yaml")
    endpoint = broker_endpoint(settings)
    assert endpoint.local and endpoint.trading_url == "http://127.0.0.1:8765"
    assert endpoint.stream_url == "ws://127.0.0.1:8765/stream"
    credentials = tmp_path / "paperbroker" / "credentials.json"
    assert credentials.stat().st_mode & 0o077 == 0  # readable by the owner only
    again = broker_endpoint(settings)
    assert again.secret_key.get_secret_value() == endpoint.secret_key.get_secret_value()

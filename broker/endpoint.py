"""Where the broker is and which credentials to use: Alpaca, or the local paper broker."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, SecretStr

from settings import (
    ALPACA_DATA_URL,
    ALPACA_LIVE_STREAM_URL,
    ALPACA_LIVE_TRADING_URL,
    ALPACA_PAPER_STREAM_URL,
    ALPACA_PAPER_TRADING_URL,
    Settings,
)

PAPER_BROKER_STREAM_PATH = "/stream"


class BrokerEndpoint(BaseModel):
    """URLs and credentials for one broker account (credentials stay SecretStr)."""

    model_config = ConfigDict(frozen=True)

    trading_url: str
    data_url: str
    stream_url: str
    key_id: SecretStr
    secret_key: SecretStr
    paper: bool = True
    local: bool = False

    @classmethod
    def for_paper_broker(
        cls, base_url: str, key_id: SecretStr, secret_key: SecretStr
    ) -> BrokerEndpoint:
        """The local paper broker at base_url (http://host:port)."""
        stream = base_url.replace("http://", "ws://").replace("https://", "wss://")
        return cls(
            trading_url=base_url,
            data_url=base_url,
            stream_url=stream + PAPER_BROKER_STREAM_PATH,
            key_id=key_id,
            secret_key=secret_key,
            paper=True,
            local=True,
        )


def broker_endpoint(settings: Settings) -> BrokerEndpoint:
    """The endpoint the settings select: Alpaca when keys are set, else the dev paper broker."""
    if settings.alpaca_api_key is not None and settings.alpaca_secret_key is not None:
        paper = settings.alpaca_paper
        return BrokerEndpoint(
            trading_url=settings.alpaca_trading_url
            or (ALPACA_PAPER_TRADING_URL if paper else ALPACA_LIVE_TRADING_URL),
            data_url=settings.alpaca_data_url or ALPACA_DATA_URL,
            stream_url=settings.alpaca_stream_url
            or (ALPACA_PAPER_STREAM_URL if paper else ALPACA_LIVE_STREAM_URL),
            key_id=settings.alpaca_api_key,
            secret_key=settings.alpaca_secret_key,
            paper=paper,
        )
    from devstack.config import load_dev_config
    from devstack.state import paper_broker_credentials

    dev = load_dev_config(settings.dev_config)
    credentials = paper_broker_credentials(settings.state_dir)
    base = settings.alpaca_trading_url or f"http://127.0.0.1:{dev.paperbroker.port}"
    return BrokerEndpoint.for_paper_broker(base, credentials.key_id, credentials.secret_key)

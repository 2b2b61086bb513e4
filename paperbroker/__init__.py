"""A local Alpaca-compatible paper broker that alpaca-py cannot tell from the real one."""

from paperbroker.config import BrokerConfig
from paperbroker.server import PaperBrokerServer

__all__ = ["BrokerConfig", "PaperBrokerServer"]

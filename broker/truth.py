"""One broker-truth snapshot: account, positions and every open order (legs listed on their own).

The market loop, reconcile, auto-manage, flatten and `status` all judge from this one shape,
so none of them sees less of the broker than another.
"""

from __future__ import annotations

from datetime import UTC, datetime

from broker.gateway import BrokerGateway
from trading.broker_models import BrokerTruth


def broker_truth(gateway: BrokerGateway) -> BrokerTruth:
    """Account, positions and open orders in one snapshot; any failure fails it whole."""
    account = gateway.get_account()
    positions = gateway.get_positions()
    orders = gateway.get_open_orders()
    return BrokerTruth(
        account=account, positions=positions, open_orders=orders, fetched_at=datetime.now(UTC)
    )

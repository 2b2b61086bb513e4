"""A stand-in trade workflow that records what BrokerSync tells it (test-only)."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from contracts import trade
    from trading.trade_models import OrderEvent, PositionUpdate


@workflow.defn(name="RecordingTradeWorkflow")
class RecordingTradeWorkflow:
    """Keeps every order_event and position_update signal until told to finish."""

    def __init__(self) -> None:
        self.events: list[OrderEvent] = []
        self.positions: list[PositionUpdate] = []
        self.done = False

    @workflow.run
    async def run(self) -> int:
        await workflow.wait_condition(lambda: self.done)
        return len(self.events) + len(self.positions)

    @workflow.signal(name=trade.ORDER_EVENT.name)
    def order_event(self, event: OrderEvent) -> None:
        self.events.append(event)

    @workflow.signal(name=trade.POSITION_UPDATE.name)
    def position_update(self, update: PositionUpdate) -> None:
        self.positions.append(update)

    @workflow.signal
    def finish(self) -> None:
        self.done = True

    @workflow.query
    def seen_events(self) -> list[OrderEvent]:
        return self.events

    @workflow.query
    def seen_positions(self) -> list[PositionUpdate]:
        return self.positions

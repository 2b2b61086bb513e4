"""OptionTradeWorkflow's interface: one durable manager per option structure, id
`option-trade-<trade_id>`.

It opens an iron condor with one `mleg` order (price walked within a limit), then checks the
legs' quotes every check interval against trading/options/exits.py's rules and closes the
structure with one `mleg` order when a rule says so or FORCE_EXIT arrives. Who talks to it:
whoever starts it (the CLI, tests) sends FORCE_EXIT and asks STATUS. The models are
trading/options/trade_models.py.
"""

from __future__ import annotations

from contracts.base import Query, Signal, WorkflowContract
from trading.options import trade_models as models

ID_PREFIX = "option-trade-"

FORCE_EXIT = Signal(
    "option_trade.force_exit",
    models.OptionForceExit,
    "close the structure now (before the entry fills: cancel it); repeats are one exit",
)
STATUS = Query(
    "option_trade.status", models.OptionTradeView, "the option trade's legs and full state"
)

WORKFLOW = WorkflowContract(
    name="OptionTradeWorkflow",
    input=models.OptionTradeInput,
    result=models.OptionTradeResult,
    state=models.OptionTradeState,
    signals=(FORCE_EXIT,),
    queries=(STATUS,),
    fixed_ids=(ID_PREFIX,),
)


def workflow_id(trade_id: str) -> str:
    """The workflow id of an option trade: `option-trade-<trade_id>`."""
    return f"{ID_PREFIX}{trade_id}"

"""`condor open` asks the risk engine before it starts anything: a condor whose max loss is over
the per-trade risk budget, or that the open option trades' heat leaves no room for, is refused
with the reason and its numbers, exit 1, and no option trade is started; --dry-run shows the
verdict and places nothing. A condor any leg of which is a leg of an open option trade is
refused the same way, naming the contract and the trade (one contract, one open option trade:
two would hold each other's closes back); an --expiry the exit rules would close at once (21
days to expiry or less) is bad input, exit 2.

The paper broker's account holds $100,000 (the root conftest's SESSION_START clock); a 1-lot
5-wide AAPL condor can lose a few hundred dollars.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
from temporalio.client import Client

from paperbroker.admin_client import AdminClient
from paperbroker.testing import RunningBroker
from settings import Settings
from tests.integration.cli_helpers import run_cli, stack_env

pytestmark = pytest.mark.integration

D = Decimal


@pytest.fixture
def env(
    settings: Settings, paper_broker: RunningBroker, database_url: str, broker_admin: AdminClient
) -> dict[str, str]:
    """The CLI pointed at this module's paper broker (reset to SESSION_START) and ledger."""
    return stack_env(settings, paper_broker, database_url)


async def _cli(env: dict[str, str], *args: str) -> Any:
    return await asyncio.to_thread(run_cli, *args, env=env)


async def _option_trades_started(client: Client, since: datetime) -> list[str]:
    query = f"WorkflowType = 'OptionTradeWorkflow' AND StartTime > '{since.isoformat()}'"
    return [w.id async for w in client.list_workflows(query)]


async def _open_condor_row(
    pool: asyncpg.Pool, trade_id: str, max_loss: Decimal, symbols: list[str] | None = None
) -> None:
    """An OPEN option trade in the ledger, as its workflow writes it (SPY legs by default)."""
    symbols = symbols or [f"SPY240419P0050{n}000" for n in range(4)]
    sides = ["buy", "sell", "sell", "buy"]
    legs = [
        {"symbol": s, "side": side, "ratio_qty": 1} for s, side in zip(symbols, sides, strict=True)
    ]
    at = datetime(2024, 3, 5, 15, 0, tzinfo=UTC)
    await pool.execute(
        """
        INSERT INTO option_trades (id, underlying, status, status_rank, expiry, qty, legs, width,
                                   credit, max_loss, workflow_id, opened_at, status_at)
        VALUES ($1, 'SPY', 'OPEN', 1, $2, 1, $3::jsonb, 100, 1, $4, $5, $6, $6)
        """,
        trade_id,
        date(2024, 4, 19),
        json.dumps(legs),
        max_loss,
        f"option-trade-{trade_id}",
        at,
    )


async def test_condor_over_the_per_trade_risk_is_refused_and_nothing_starts(
    env: dict[str, str], client: Client
) -> None:
    since = datetime.now(UTC)
    tight = {**env, "RISK_PER_TRADE_USD": "50"}
    done = await _cli(tight, "condor", "open", "AAPL", "--json")
    assert done.returncode == 1, done.stdout + done.stderr
    result = json.loads(done.stdout)
    assert result["placed"] is False and result["workflow_id"] is None, result
    risk = result["risk"]
    assert risk["approved"] is False and risk["reason"] == "max_loss_over_budget", risk
    assert D(risk["risk"]) > 50
    assert f"max_loss={D(risk['risk']):.2f} budget=50.00 (risk_per_trade_usd)" in risk["detail"]
    # The refused max loss is the plan's worst case: the width less the natural credit.
    assert D(risk["risk"]) == D(result["plan"]["max_loss_natural"]).quantize(D("0.01"))

    human = await _cli(tight, "condor", "open", "AAPL")
    assert human.returncode == 1, human.stdout + human.stderr
    lines = [line for line in human.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, human.stderr
    assert lines[0].startswith("error: condor not placed: risk refused: max_loss_over_budget: ")
    assert "budget=50.00" in lines[0]
    assert await _option_trades_started(client, since) == []

    # --dry-run shows the same verdict and places nothing; its exit code is the planner's.
    dry = await _cli(tight, "condor", "open", "AAPL", "--dry-run")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert "risk: would be refused: max_loss_over_budget: " in dry.stdout


async def test_open_option_trades_heat_refuses_a_condor_that_fits_the_budget(
    env: dict[str, str], pool: asyncpg.Pool
) -> None:
    approved = json.loads((await _cli(env, "condor", "open", "AAPL", "--dry-run", "--json")).stdout)
    assert approved["risk"]["approved"] is True, approved["risk"]
    assert approved["risk"]["heat_after"] == approved["risk"]["risk"]  # nothing else open
    # An open condor holding $5,900 of the $6,000 heat cap (6 % of $100,000) leaves $100.
    await _open_condor_row(pool, "ic-hot", D(5_900))
    try:
        done = await _cli(env, "condor", "open", "AAPL", "--json")
        assert done.returncode == 1, done.stdout + done.stderr
        result = json.loads(done.stdout)
        assert result["placed"] is False
        risk = result["risk"]
        assert risk["reason"] == "heat_cap", risk
        assert risk["detail"].startswith("heat=5900.00 new=") and "cap=6000.00" in risk["detail"]

        dry = await _cli(env, "condor", "open", "AAPL", "--dry-run")
        assert dry.returncode == 0, dry.stdout + dry.stderr
        assert "risk: would be refused: heat_cap: heat=5900.00" in dry.stdout
    finally:
        await pool.execute("DELETE FROM option_trades WHERE id = 'ic-hot'")


async def test_a_condor_on_the_legs_of_an_open_option_trade_is_refused_naming_them(
    env: dict[str, str], pool: asyncpg.Pool, client: Client
) -> None:
    since = datetime.now(UTC)
    first = json.loads((await _cli(env, "condor", "open", "AAPL", "--dry-run", "--json")).stdout)
    assert first["risk"]["approved"] is True and first["claimed"] == [], first
    plan = first["plan"]
    symbols = [plan[leg]["symbol"] for leg in ("long_put", "short_put", "short_call", "long_call")]
    # An open condor on the same expiry and deltas: the same strikes.
    await _open_condor_row(pool, "ic-same", D(100), symbols)
    try:
        done = await _cli(env, "condor", "open", "AAPL", "--json")
        assert done.returncode == 1, done.stdout + done.stderr
        result = json.loads(done.stdout)
        assert result["placed"] is False and result["workflow_id"] is None, result
        assert result["risk"]["approved"] is True  # refused for its legs, not its risk
        assert [(c["symbol"], c["trade_id"], c["status"]) for c in result["claimed"]] == [
            (s, "ic-same", "OPEN") for s in symbols
        ]

        human = await _cli(env, "condor", "open", "AAPL")
        assert human.returncode == 1, human.stdout + human.stderr
        lines = [line for line in human.stderr.splitlines() if line.strip()]
        assert len(lines) == 1, human.stderr
        assert lines[0].startswith(
            f"error: condor not placed: {symbols[0]} is a leg of open option trade ic-same (OPEN)"
        )
        assert "pick another --expiry, --delta or --width, or close ic-same first" in lines[0]
        assert await _option_trades_started(client, since) == []

        dry = await _cli(env, "condor", "open", "AAPL", "--dry-run")
        assert dry.returncode == 0, dry.stdout + dry.stderr
        assert f"legs: would be refused: {symbols[0]} is a leg of open option trade ic-same" in (
            dry.stdout
        )
    finally:
        await pool.execute("DELETE FROM option_trades WHERE id = 'ic-same'")


async def test_an_expiry_the_exit_rules_would_close_at_once_is_bad_input(
    env: dict[str, str], client: Client
) -> None:
    since = datetime.now(UTC)
    # SESSION_START is 2024-03-05: the 2024-03-15 weekly is 10 days out, inside the 21.
    for extra in ((), ("--dry-run", "--json")):
        done = await _cli(env, "condor", "open", "AAPL", "--expiry", "2024-03-15", *extra)
        assert done.returncode == 2, done.stdout + done.stderr
        assert done.stderr.strip() == (
            "error: expiry 2024-03-15 is 10 days out; condors are closed at 21 days to expiry: "
            "pick an expiry more than 21 days out"
        )
    assert await _option_trades_started(client, since) == []


async def test_two_condor_opens_at_once_take_turns_so_the_heat_cap_holds(
    env: dict[str, str], pool: asyncpg.Pool, client: Client
) -> None:
    """Room in the heat cap for one condor, two `condor open` at the same moment: the second
    checks against the row the first reserved (the option-entry lock), so one opens and the
    other is refused for heat. No worker runs: the rows are the commands' own."""
    dry = json.loads((await _cli(env, "condor", "open", "AAPL", "--dry-run", "--json")).stdout)
    one = D(str(dry["risk"]["risk"]))
    # $6,000 cap: the open row leaves room for one condor and a half, never two.
    await _open_condor_row(pool, "ic-room-for-one", D(6_000) - one * D("1.5"))
    started: list[str] = []
    try:
        done = await asyncio.gather(
            _cli(env, "condor", "open", "AAPL", "--json"),
            _cli(env, "condor", "open", "AAPL", "--json"),
        )
        results = [json.loads(d.stdout) for d in done]
        started = [r["workflow_id"] for r in results if r["workflow_id"]]
        assert sorted(d.returncode for d in done) == [0, 1], [d.stderr for d in done]
        [placed] = [r for r in results if r["placed"]]
        [refused] = [r for r in results if not r["placed"]]
        assert refused["risk"]["reason"] == "heat_cap", refused["risk"]
        # The first's row was there when the second checked: PENDING_ENTRY at its max loss.
        row = await pool.fetchrow(
            "SELECT status, max_loss, workflow_id FROM option_trades WHERE id = $1",
            placed["trade_id"],
        )
        assert row is not None and row["status"] == "PENDING_ENTRY"
        assert row["max_loss"] == one and row["workflow_id"] == placed["workflow_id"]
        assert (
            await pool.fetchval("SELECT count(*) FROM option_trades WHERE id <> 'ic-room-for-one'")
            == 1
        )
    finally:
        for workflow_id in started:
            await client.get_workflow_handle(workflow_id).terminate("test finished")
        await pool.execute("DELETE FROM option_trades")


async def test_an_account_below_options_level_3_cannot_open_a_condor(
    env: dict[str, str], broker_admin: AdminClient, client: Client
) -> None:
    """An iron condor is a multi-leg spread, Alpaca's level 3: on a level-2 account (long calls
    and puts only) condor open refuses before starting anything, saying what to do."""
    since = datetime.now(UTC)
    broker_admin.set_options_level(2)
    try:
        done = await _cli(env, "condor", "open", "AAPL")
        dry = json.loads((await _cli(env, "condor", "open", "AAPL", "--dry-run", "--json")).stdout)
    finally:
        broker_admin.set_options_level(3)
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr.strip() == (
        "error: condor not placed: this account's options trading level is 2; an iron condor is "
        "a multi-leg spread, level 3: raise the account's options level in the Alpaca dashboard"
    )
    assert dry["placed"] is False and dry["options_level"].startswith("this account's options")
    assert await _option_trades_started(client, since) == []

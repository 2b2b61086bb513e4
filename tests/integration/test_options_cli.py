"""`starter.py options chain|rank` and `condor open [--dry-run]` against the paper broker.

The broker's clock is the root conftest's SESSION_START (Tuesday 2024-03-05, 10:30 New York);
AAPL's chain there lists weeklies and monthlies on a $2.50 strike grid.
"""

from __future__ import annotations

import asyncio
import json
from datetime import date
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
from temporalio.client import Client, WorkflowExecutionStatus

from paperbroker.admin_client import AdminClient
from paperbroker.testing import RunningBroker
from settings import Settings
from tests.integration.cli_helpers import run_cli, stack_env
from trading.options.chain import OptionChain, OptionRight
from trading.options.trade_models import OptionTradeInput

pytestmark = pytest.mark.integration

TODAY = date(2024, 3, 5)
D = Decimal


@pytest.fixture
def env(
    settings: Settings, paper_broker: RunningBroker, database_url: str, broker_admin: AdminClient
) -> dict[str, str]:
    """The CLI pointed at this module's paper broker (reset to SESSION_START) and ledger."""
    return stack_env(settings, paper_broker, database_url)


async def _cli(env: dict[str, str], *args: str) -> Any:
    return await asyncio.to_thread(run_cli, *args, env=env)


def _json(done: Any, code: int = 0) -> Any:
    assert done.returncode == code, done.stdout + done.stderr
    return json.loads(done.stdout)


def _error(done: Any) -> str:
    assert done.returncode == 2, done.stdout + done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    return str(lines[0])


async def test_chain_lists_contracts_with_greeks_and_is_paid_from_the_budget(
    env: dict[str, str], pool: asyncpg.Pool
) -> None:
    chain = OptionChain.model_validate(_json(await _cli(env, "options", "chain", "AAPL", "--json")))
    assert chain.underlying == "AAPL" and chain.underlying_price > 0
    assert date(2024, 3, 8) in chain.expiries() and date(2024, 4, 19) in chain.expiries()
    calls = chain.at(date(2024, 3, 15), OptionRight.CALL)
    puts = chain.at(date(2024, 3, 15), OptionRight.PUT)
    assert len(calls) == len(puts) == 41
    assert all(c.delta is not None and c.iv is not None and c.iv > 0 for c in calls + puts)
    assert all(0 <= (c.delta or 0) <= 1 for c in calls) and all((p.delta or 0) <= 0 for p in puts)
    deltas = [c.delta or D(0) for c in calls]
    assert deltas == sorted(deltas, reverse=True)  # a call's delta falls as the strike rises
    assert sum(c.open_interest for c in calls) > 0 and all(c.bid <= c.ask for c in calls)
    # The options reads went into the account's broker-call budget like every other call.
    spent = await pool.fetch("SELECT call, priority FROM broker_calls")
    assert {"option_contracts", "option_chain"} <= {row["call"] for row in spent}
    assert {row["priority"] for row in spent if row["call"].startswith("option_")} == {"read"}

    one = OptionChain.model_validate(
        _json(await _cli(env, "options", "chain", "AAPL", "--expiry", "2024-03-15", "--json"))
    )
    assert one.expiries() == [date(2024, 3, 15)] and len(one.contracts) == 82
    human = await _cli(env, "options", "chain", "AAPL", "--expiry", "2024-03-15")
    assert human.returncode == 0, human.stderr
    assert "2024-03-15 (10d), strike step 2.5" in human.stdout
    assert "STRIKE  CALL BID" in human.stdout and "PUT BID" in human.stdout


async def test_rank_orders_candidates_with_their_parts(env: dict[str, str]) -> None:
    report = _json(await _cli(env, "options", "rank", "AAPL", "--width", "5", "--json"))
    ranked = report["candidates"]
    assert len(ranked) > 100 and [r["rank"] for r in ranked] == list(range(1, len(ranked) + 1))
    scores = [D(r["rank_score"]) for r in ranked]
    assert scores == sorted(scores, reverse=True)
    weights = {name: D(w) for name, w in report["weights"].items()}
    for entry in ranked:
        parts = {name: D(p) for name, p in entry["parts"].items()}
        assert set(parts) == set(weights) and all(0 <= p <= 1 for p in parts.values())
        assert D(entry["rank_score"]) == sum(weights[n] * parts[n] for n in weights)
        spread = entry["candidate"]
        assert D(spread["width"]) == 5
    human = await _cli(env, "options", "rank", "AAPL", "--top", "3")
    assert human.returncode == 0, human.stderr
    assert "rank_score = 0.25 * spread + 0.15 * open_interest" in human.stdout
    assert "PREMIUM_RISK" in human.stdout and "more; --top N or --json for all" in human.stdout


async def test_condor_dry_run_plans_four_legs(env: dict[str, str]) -> None:
    result = _json(await _cli(env, "condor", "open", "AAPL", "--qty", "2", "--dry-run", "--json"))
    assert result["dry_run"] is True and result["placed"] is False and result["refusal"] is None
    plan = result["plan"]
    short_put, long_put = plan["short_put"], plan["long_put"]
    short_call, long_call = plan["short_call"], plan["long_call"]
    width, qty = D(plan["width"]), plan["qty"]
    assert (width, qty) == (D(5), 2)
    assert D(short_put["strike"]) < D(short_call["strike"])
    assert D(long_put["strike"]) == D(short_put["strike"]) - width
    assert D(long_call["strike"]) == D(short_call["strike"]) + width
    assert {leg["expiry"] for leg in (short_put, long_put, short_call, long_call)} == {
        plan["expiry"]
    }
    assert 30 <= plan["dte"] <= 45
    credit = D(plan["credit"])
    assert credit > 0 and D(plan["credit_mid"]) >= D(plan["credit_natural"])
    assert D(plan["max_loss"]) == width * 100 * qty - credit
    assert D(plan["break_even_low"]) == D(short_put["strike"]) - D(plan["credit_mid"])
    assert D(plan["break_even_high"]) == D(short_call["strike"]) + D(plan["credit_mid"])
    assert 0 < D(plan["probability_of_profit"]) < 1

    human = await _cli(env, "condor", "open", "AAPL", "--dry-run")
    assert human.returncode == 0, human.stderr
    assert "dry run, nothing placed" in human.stdout and "max loss: $" in human.stdout
    for action in ("buy put", "sell put", "sell call", "buy call"):
        assert action in human.stdout


async def test_condor_refusal_exits_1_with_the_planners_reason(env: dict[str, str]) -> None:
    # A 10-cent wing is a strike step on no expiry; asking for shorts at |delta| 0.49 with a
    # 0.01 tolerance on the April monthly finds shorts that cross at the money.
    done = await _cli(
        env, "condor", "open", "AAPL", "--expiry", "2024-04-19", "--delta", "0.49", "--dry-run"
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr.startswith("error: no condor: ")
    refused = _json(
        await _cli(
            env,
            "condor",
            "open",
            "AAPL",
            "--expiry",
            "2024-04-19",
            "--delta",
            "0.49",
            "--dry-run",
            "--json",
        ),
        code=1,
    )
    assert refused["plan"] is None and refused["refusal"]["reason"] in done.stderr


async def test_quote_shows_named_contracts_as_the_chain_does(env: dict[str, str]) -> None:
    chain = OptionChain.model_validate(
        _json(await _cli(env, "options", "chain", "AAPL", "--expiry", "2024-03-15", "--json"))
    )
    near = sorted(chain.contracts, key=lambda c: abs(c.strike - chain.underlying_price))[:2]
    asked = [c.symbol for c in near]
    quoted = _json(await _cli(env, "options", "quote", *[s.lower() for s in asked], "--json"))
    assert [c["symbol"] for c in quoted["contracts"]] == asked
    for shown, known in zip(quoted["contracts"], near, strict=True):
        assert (D(shown["bid"]), D(shown["ask"])) == (known.bid, known.ask)
        assert shown["delta"] is not None and shown["open_interest"] == known.open_interest
    human = await _cli(env, "options", "quote", *asked)
    assert human.returncode == 0 and asked[0] in human.stdout and "open interest" in human.stdout


async def test_bad_input_exits_2_with_one_line(env: dict[str, str]) -> None:
    cases = {
        ("options", "chain", "ZZZZ"): "unknown symbol ZZZZ",
        ("options", "chain", "AAPL", "--expiry", "2024-03-01"): "expiry 2024-03-01 is in the past",
        ("options", "chain", "AAPL", "--expiry", "2024-03-13"): "expiry 2024-03-13 is not listed",
        ("options", "chain", "AAPL", "--expiry", "soon"): "--expiry must be a date YYYY-MM-DD",
        ("options", "rank", "AAPL", "--width", "3"): "width 3 is not a multiple of the strike",
        ("condor", "open", "AAPL", "--width", "3", "--dry-run"): "is not a multiple of the strike",
        ("condor", "open", "AAPL", "--qty", "0", "--dry-run"): "--qty must be a whole number",
        ("condor", "open", "AAPL", "--delta", "0.7", "--dry-run"): "--delta must be between 0",
        ("condor", "open", "ZZZZ", "--dry-run"): "unknown symbol ZZZZ",
        ("options", "quote", "AAPL"): "not an option contract symbol: 'AAPL'",
        ("options", "quote", "AAPL240301C00180000"): "expiry 2024-03-01 is in the past",
        ("options", "quote", "AAPL240315C09990000"): "unknown contract AAPL240315C09990000",
    }
    # Independent commands: run them side by side (each is its own process).
    done = await asyncio.gather(*(_cli(env, *args) for args in cases))
    for (args, message), answer in zip(cases.items(), done, strict=True):
        assert message in _error(answer), args


async def test_condor_open_starts_one_option_trade_for_the_plan(
    env: dict[str, str], client: Client, pool: asyncpg.Pool
) -> None:
    """Without --dry-run the plan becomes `option-trade-<id>`: the workflow is started with the
    plan, asking the credit at the mids and walking at most to the natural credit (the
    workflow's own entry and exits are tested in tests/integration/options/)."""
    result = _json(await _cli(env, "condor", "open", "AAPL", "--json"))
    assert result["dry_run"] is False and result["placed"] is True, result
    workflow_id = result["workflow_id"]
    assert workflow_id == f"option-trade-{result['trade_id']}"
    handle = client.get_workflow_handle(workflow_id)
    try:
        description = await handle.describe()
        assert description.status is WorkflowExecutionStatus.RUNNING
        assert description.workflow_type == "OptionTradeWorkflow"
        history = await handle.fetch_history()
        started = history.events[0].workflow_execution_started_event_attributes
        (payload,) = await client.data_converter.decode(started.input.payloads)
        spec = OptionTradeInput.model_validate(payload).spec
        plan = result["plan"]
        assert spec.plan.short_put.symbol == plan["short_put"]["symbol"]
        assert spec.plan.long_call.symbol == plan["long_call"]["symbol"]
        assert spec.limit_credit <= D(str(plan["credit_mid"]))
        assert spec.limit_credit - spec.max_walk >= D(str(plan["credit_natural"])) - D("0.01")
        # Its ledger row was reserved before the start (no worker runs here to write it).
        row = await pool.fetchrow(
            "SELECT status, workflow_id FROM option_trades WHERE id = $1", result["trade_id"]
        )
        assert row is not None and (row["status"], row["workflow_id"]) == (
            "PENDING_ENTRY",
            workflow_id,
        )
    finally:
        await handle.terminate("test finished")
        await pool.execute("DELETE FROM option_trades WHERE id = $1", result["trade_id"])

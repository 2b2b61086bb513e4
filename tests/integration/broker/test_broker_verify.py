"""`broker verify` against the paper broker: in-process and through starter.py.

Every check passes (or skips with its reason) against the faithful paper broker, in its
default mode and with held legs hidden and slow routing/cancels; nothing the run placed stays
open and the test share is sold; a broker that answers differently is reported as FAIL with the
guard behaviour affected (exit 1); a live account is refused with one line (exit 2); Ctrl-C
cleans up and exits 130.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time

import pytest

from broker.alpaca import AlpacaGateway
from broker.verify import CHECKS, VerifyOptions, VerifyReport, exit_code, run_verify
from broker.verify_options import OPTION_CHECKS
from broker.verify_orders import HIDDEN_LEGS_NOTE
from broker.verify_session import Verdict
from paperbroker.admin_client import AdminClient
from paperbroker.testing import RunningBroker
from settings import LIVE_CONFIRMATION, ROOT
from tests.conftest import endpoint_for
from tests.integration.cli_helpers import cli_env, run_cli

pytestmark = pytest.mark.integration

POSITION_CHECKS = {
    "filled_bracket_legs",
    "replace_stop_leg_price",
    "group_cancel_take_profit",
    "share_reservation",
}
# Not observable while the market is open and orders route at once (it skips with its reason).
TIMING_DEPENDENT = {"replace_refused_while_accepted"}
OPTION_CHECK_NAMES = [check.name for check in OPTION_CHECKS]


def broker_env(paper_broker: RunningBroker, **overrides: str) -> dict[str, str]:
    """The CLI pointed at the paper broker; `broker verify` needs neither Temporal nor a ledger."""
    return cli_env(
        ALPACA_API_KEY=paper_broker.key_id,
        ALPACA_SECRET_KEY=paper_broker.secret_key,
        ALPACA_TRADING_URL=paper_broker.trading_url,
        ALPACA_DATA_URL=paper_broker.data_url,
        ALPACA_STREAM_URL=paper_broker.stream_url,
        **overrides,
    )


def verdicts(report: VerifyReport) -> dict[str, Verdict]:
    """Check name -> verdict."""
    return {check.name: check.verdict for check in report.checks}


def assert_passes_or_skips_with_reason(report: VerifyReport) -> None:
    """No FAIL; every SKIP says why."""
    failures = [f"{c.name}: {c.observed}" for c in report.checks if c.verdict is Verdict.FAIL]
    assert not failures, failures
    assert all(c.observed for c in report.checks if c.verdict is Verdict.SKIP)
    assert [c.name for c in report.checks] == [c.name for c in CHECKS]


def assert_nothing_left(admin: AdminClient, positions: dict[str, str] | None = None) -> None:
    """No open order at the broker, and the positions as they were before the run."""
    state = admin.state()
    assert state["open_orders"] == 0, state
    assert state["positions"] == (positions or {})


async def test_every_check_passes_and_the_run_leaves_nothing_behind(
    paper_broker: RunningBroker, broker_admin: AdminClient
) -> None:
    report = await asyncio.to_thread(
        run_verify, endpoint_for(paper_broker), VerifyOptions(with_position=True)
    )
    assert_passes_or_skips_with_reason(report)
    must_pass = {c.name for c in CHECKS} - TIMING_DEPENDENT
    assert {n for n, v in verdicts(report).items() if v is Verdict.PASS} >= must_pass
    assert report.target.symbol == "SPY" and report.target.with_position
    cleanup = report.cleanup
    assert cleanup.complete and cleanup.position_opened and cleanup.position_left is None
    assert cleanup.orders_placed >= 10 and not cleanup.orders_left_open
    assert exit_code(report) == 0
    assert_nothing_left(broker_admin)


async def test_the_options_checks_pass_and_open_no_option_position(
    paper_broker: RunningBroker, broker_admin: AdminClient
) -> None:
    report = await asyncio.to_thread(
        run_verify, endpoint_for(paper_broker), VerifyOptions(), checks=OPTION_CHECKS
    )
    by_name = {c.name: c for c in report.checks}
    assert list(by_name) == OPTION_CHECK_NAMES
    assert all(c.verdict is Verdict.PASS for c in report.checks), [
        f"{c.name}: {c.observed}" for c in report.checks
    ]
    assert "options_trading_level 3" in by_name["options_account"].observed
    assert "page 2: 5 contracts" in by_name["option_contracts_paging"].observed
    assert "with greeks and implied volatility (e.g." in by_name["option_chain_snapshot"].observed
    condor = by_name["mleg_condor_order"].observed
    assert "as 'mleg' with 4 legs" in condor
    assert "replace refused: 422" in condor  # reported; our workflow never replaces an mleg
    assert condor.endswith("lookup by client_order_id found the first order")
    assert "-> canceled" in condor and "client_order_id must be unique" in condor
    assert "an empty list" in by_name["option_activities"].observed
    assert report.cleanup.complete and report.cleanup.orders_placed == 5  # parent + 4 legs
    assert exit_code(report) == 0
    assert not paper_broker.server.broker.options.positions
    routes = broker_admin.requests()["by_route"]
    assert routes["POST /v2/orders"] == 2  # the condor, and its refused resubmit
    assert routes["GET /v2/account/activities"] == 1
    assert_nothing_left(broker_admin)


async def test_an_account_without_options_skips_every_option_check_saying_what_to_do(
    paper_broker: RunningBroker, broker_admin: AdminClient
) -> None:
    broker_admin.set_options_level(0)  # options not enabled (Alpaca level 0)
    try:
        report = await asyncio.to_thread(
            run_verify, endpoint_for(paper_broker), VerifyOptions(), checks=OPTION_CHECKS
        )
    finally:
        broker_admin.set_options_level(3)
    # No broker misbehaving: an account that does not trade spreads (stocks-only prelive passes).
    first, *rest = report.checks
    assert first.name == "options_account" and first.verdict is Verdict.SKIP
    assert "options_trading_level 0" in first.observed
    assert "enable options trading level 3" in first.observed
    assert first.affects.startswith("an option trade's entry")
    assert [c.name for c in rest] == OPTION_CHECK_NAMES[1:]
    for check in rest:
        assert check.verdict is Verdict.SKIP, (check.name, check.observed)
        assert "options level is 0, not 3 (see options_account)" in check.observed
    assert exit_code(report) == 0 and report.cleanup.orders_placed == 0
    assert "POST /v2/orders" not in broker_admin.requests()["by_route"]
    assert_nothing_left(broker_admin)


async def test_an_activities_answer_that_is_not_a_list_fails(
    paper_broker: RunningBroker, broker_admin: AdminClient
) -> None:
    broker_admin.add_fault(
        method="GET", path="/v2/account/activities", status=200, body={"activities": []}
    )
    activities = next(c for c in OPTION_CHECKS if c.name == "option_activities")
    report = await asyncio.to_thread(
        run_verify, endpoint_for(paper_broker), VerifyOptions(), checks=[activities]
    )
    (check,) = report.checks
    assert check.verdict is Verdict.FAIL and "not a list" in check.observed
    assert check.affects.startswith("booking an assigned or exercised condor's P&L")


async def test_hidden_held_legs_and_slow_routing_and_cancels_still_pass(
    paper_broker: RunningBroker, broker_admin: AdminClient
) -> None:
    broker_admin.configure(
        hide_held_legs=True, fill_delay_ms=600, cancel_delay_ms=400, replace_delay_ms=400
    )
    report = await asyncio.to_thread(
        run_verify, endpoint_for(paper_broker), VerifyOptions(with_position=True)
    )
    assert_passes_or_skips_with_reason(report)
    by_name = {c.name: c for c in report.checks}
    listed = by_name["held_legs_listed"]
    assert listed.verdict is Verdict.PASS and "hidden" in listed.observed
    assert listed.note == HIDDEN_LEGS_NOTE
    # Routing takes 600 ms here, so the replace meets the order still accepted.
    refused = by_name["replace_refused_while_accepted"]
    assert refused.verdict is Verdict.PASS and "accepted" in refused.observed
    assert "pending_cancel -> canceled" in by_name["group_cancel_entry"].observed
    assert report.cleanup.complete
    assert_nothing_left(broker_admin)


async def test_json_follows_the_schema_and_the_symbol_is_one_the_account_does_not_hold(
    paper_broker: RunningBroker, broker_admin: AdminClient
) -> None:
    broker_admin.open_position("SPY", 5)
    done = await asyncio.to_thread(
        run_cli, "broker", "verify", "--json", env=broker_env(paper_broker)
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = VerifyReport.model_validate(json.loads(done.stdout))  # the documented schema
    assert_passes_or_skips_with_reason(report)
    assert report.target.symbol == "QQQ"  # SPY is held
    for name in POSITION_CHECKS:
        check = next(c for c in report.checks if c.name == name)
        assert check.verdict is Verdict.SKIP and "--with-position" in check.observed
    assert report.cleanup.complete and not report.cleanup.position_opened
    assert paper_broker.key_id not in done.stdout and paper_broker.secret_key not in done.stdout
    assert_nothing_left(broker_admin, positions={"SPY": "5"})


async def test_a_broker_that_answers_differently_fails_and_names_the_guard_behaviour(
    paper_broker: RunningBroker, broker_admin: AdminClient
) -> None:
    # The lookup by client_order_id finds nothing: "at most once" could not resolve a duplicate.
    broker_admin.add_fault(
        method="GET",
        path="/v2/orders:by_client_order_id",
        status=404,
        body={"code": 40410000, "message": "order not found"},
    )
    done = await asyncio.to_thread(run_cli, "broker", "verify", env=broker_env(paper_broker))
    assert done.returncode == 1, done.stdout + done.stderr
    assert (
        "FAIL duplicate_client_order_id -> affects: at most once: a submit retried after a "
        "lost answer resolves to the existing order"
    ) in done.stdout
    # The condor's at-most-once relies on the same lookup.
    assert (
        "FAIL mleg_condor_order -> affects: an option trade's entry and exit: one mleg "
        "limit order, at most once by client_order_id"
    ) in done.stdout
    assert "lookup by client_order_id found nothing (absent)" in " ".join(done.stdout.split())
    assert "ASSUMPTION" in done.stdout and "OBSERVED" in done.stdout
    assert "summary: " in done.stdout and "2 FAIL" in done.stdout
    assert "cleanup complete" in done.stdout
    assert "FAIL  duplicate_client_order_id" in done.stderr  # progress, one line per check
    assert_nothing_left(broker_admin)


async def test_a_leg_qty_replace_that_goes_through_is_a_fail(
    paper_broker: RunningBroker, broker_admin: AdminClient
) -> None:
    broker_admin.configure(leg_replace="any")  # the lenient broker this check guards against
    report = await asyncio.to_thread(run_verify, endpoint_for(paper_broker), VerifyOptions())
    failed = [c for c in report.checks if c.verdict is Verdict.FAIL]
    assert [c.name for c in failed] == ["bracket_leg_qty_refused"]
    assert failed[0].affects == "resize of a bracket stop falls back to cancel-confirm-place"
    assert "replaced: new leg" in failed[0].observed
    assert exit_code(report) == 1 and report.cleanup.complete
    assert_nothing_left(broker_admin)


async def test_a_live_account_and_bad_input_are_refused_with_one_line(
    paper_broker: RunningBroker, broker_admin: AdminClient
) -> None:
    live = broker_env(
        paper_broker,
        ALPACA_PAPER="false",
        TRADING_MODE="live",
        TRADING_LIVE_CONFIRM=LIVE_CONFIRMATION,
    )
    done = await asyncio.to_thread(run_cli, "broker", "verify", env=live)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "--allow-live" in lines[0]
    assert broker_admin.requests()["total"] == 0  # refused before asking the broker anything

    unconfirmed = broker_env(paper_broker, ALPACA_PAPER="false", TRADING_MODE="live")
    done = await asyncio.to_thread(run_cli, "broker", "verify", "--allow-live", env=unconfirmed)
    assert done.returncode == 2 and "TRADING_LIVE_CONFIRM" in done.stderr

    broker_admin.open_position("AAPL", 2)
    for args, words in (
        (("--symbol", "S P Y"), "not a ticker symbol"),
        (("--symbol", "aapl"), "the account holds AAPL"),
        (("--symbol", "NOSUCH"), "does not know NOSUCH"),
    ):
        done = await asyncio.to_thread(
            run_cli, "broker", "verify", *args, env=broker_env(paper_broker)
        )
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1 and words in done.stderr
    assert_nothing_left(broker_admin, positions={"AAPL": "2"})


@pytest.mark.slow
def test_ctrl_c_cleans_up_and_exits_130(
    paper_broker: RunningBroker, broker_admin: AdminClient
) -> None:
    # Slow order reads keep the run busy after its first orders are placed.
    broker_admin.add_fault(method="GET", path="/v2/orders/*", status=0, latency_ms=1500)
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "starter.py"), "broker", "verify", "--with-position"],
        env=broker_env(paper_broker),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while broker_admin.state()["open_orders"] < 2:
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        broker_admin.clear_faults()
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, stdout + stderr
    assert "interrupted after" in stderr and "cleanup complete" in stderr
    assert "cleanup complete" in stdout
    assert_nothing_left(broker_admin)


async def test_every_request_of_a_run_is_counted_for_the_budget(
    paper_broker: RunningBroker, broker_admin: AdminClient
) -> None:
    """`broker verify` and prelive charge the shared budget what the run's gateway counted: the
    raw alpaca-py client and the options gateway count on it too, so no request goes unpaid."""
    endpoint = endpoint_for(paper_broker)
    gateway = AlpacaGateway(endpoint)
    broker_admin.reset_requests()
    report = await asyncio.to_thread(run_verify, endpoint, VerifyOptions(), gateway=gateway)
    assert report.summary.ok, [f"{c.name}: {c.observed}" for c in report.checks]
    trading_requests = broker_admin.requests()["total"]  # the /v2 routes the broker served
    # Market data (/v1beta1 option snapshots, stock quotes) comes on top of those.
    assert gateway.rate_limits.requests_sent >= trading_requests > 0

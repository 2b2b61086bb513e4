"""`broker verify` without a broker: its documented schema, the live refusal, exit codes."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from broker.endpoint import broker_endpoint
from broker.verify import (
    CHECKS,
    VerifyRefused,
    VerifyReport,
    VerifySummary,
    VerifyTarget,
    exit_code,
    live_refusal,
    normalized_symbol,
)
from broker.verify_session import CleanupReport
from settings import LIVE_CONFIRMATION, ROOT, Settings


def test_the_committed_schema_matches_the_model() -> None:
    committed = json.loads((ROOT / "docs" / "broker_verify.schema.json").read_text())
    assert committed == VerifyReport.model_json_schema(mode="serialization"), (
        "regenerate docs/broker_verify.schema.json from broker.verify.VerifyReport"
    )


def test_every_check_has_a_unique_name_and_names_what_it_affects() -> None:
    names = [check.name for check in CHECKS]
    assert len(names) == len(set(names))
    assert all(check.assumption and check.expected and check.affects for check in CHECKS)


def test_paper_accounts_need_nothing_extra() -> None:
    paper = Settings(alpaca_api_key="AKID1", alpaca_secret_key="s3cret")
    assert live_refusal(paper, broker_endpoint(paper), allow_live=False) is None


def test_a_live_account_is_refused_without_allow_live() -> None:
    live = Settings(
        alpaca_api_key="AKID1",
        alpaca_secret_key="s3cret",
        alpaca_paper=False,
        trading_mode="live",
        trading_live_confirm=LIVE_CONFIRMATION,
    )
    refusal = live_refusal(live, broker_endpoint(live), allow_live=False)
    assert refusal is not None and "--allow-live" in refusal and "LIVE" in refusal
    assert live_refusal(live, broker_endpoint(live), allow_live=True) is None


def test_a_paper_setting_pointed_at_the_live_api_is_refused_even_with_allow_live() -> None:
    sneaky = Settings(
        alpaca_api_key="AKID1",
        alpaca_secret_key="s3cret",
        alpaca_trading_url="https://api.alpaca.markets",
    )
    refusal = live_refusal(sneaky, broker_endpoint(sneaky), allow_live=True)
    assert refusal is not None and "TRADING_MODE is paper" in refusal


def test_symbols_are_tickers() -> None:
    assert normalized_symbol(" spy ") == "SPY"
    assert normalized_symbol("brk.b") == "BRK.B"
    for bad in ("", "S P Y", "$SPY", "TOOLONGSYMBOL"):
        with pytest.raises(VerifyRefused):
            normalized_symbol(bad)


def _report(failed: int, complete: bool, interrupted: bool = False) -> VerifyReport:
    return VerifyReport(
        generated_at=datetime.now(UTC),
        target=VerifyTarget(
            kind="paper",
            trading_url="http://127.0.0.1:1",
            stream_url="ws://127.0.0.1:1/stream",
            symbol="SPY",
            reference_price=Decimal("520"),
            market_open=True,
            with_position=False,
        ),
        checks=[],
        cleanup=CleanupReport(
            complete=complete,
            orders_placed=0,
            orders_cancelled=[],
            orders_left_open=[] if complete else ["x"],
            position_opened=False,
        ),
        interrupted=interrupted,
        summary=VerifySummary(
            passed=1,
            failed=failed,
            skipped=0,
            ok=failed == 0 and complete and not interrupted,
        ),
    )


def test_exit_codes() -> None:
    assert exit_code(_report(failed=0, complete=True)) == 0
    assert exit_code(_report(failed=1, complete=True)) == 1
    assert exit_code(_report(failed=0, complete=False)) == 1
    assert exit_code(_report(failed=0, complete=True, interrupted=True)) == 130

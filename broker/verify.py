"""`broker verify`: does the configured broker behave as the guard assumes?

Runs the checks of broker/verify_checks.py against the configured account (the local paper
broker, an Alpaca paper account, or - only with --allow-live and the live confirmation - a live
one) and reports each as PASS, FAIL or SKIP with the guard behaviour that relies on it. Orders
are one share, priced far from the market, on a symbol the account neither holds nor trades,
time in force `day`; the options checks (broker/verify_options.py) add one 1-lot iron condor
that cannot fill. All of them are cancelled at the end, also after Ctrl-C.
The report is `VerifyReport` (JSON schema: docs/broker_verify.schema.json).
"""

from __future__ import annotations

import logging
import re
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from types import FrameType
from typing import Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from alpaca.common.exceptions import APIError
from pydantic import BaseModel, ConfigDict, Field

from broker.alpaca import AlpacaGateway
from broker.endpoint import BrokerEndpoint
from broker.errors import AuthFailed, BrokerError
from broker.gateway import find_asset
from broker.verify_answers import ANSWER_CHECKS
from broker.verify_options import OPTION_CHECKS
from broker.verify_orders import ORDER_CHECKS, POSITION_CHECKS
from broker.verify_session import (
    READ_TIMEOUT_S,
    Check,
    CleanupReport,
    Needs,
    Observed,
    Skip,
    Verdict,
    VerifySession,
    answer_of,
    failed,
)
from broker.verify_stream import STREAM_CHECK
from settings import LIVE_CONFIRMATION, Settings

logger = logging.getLogger(__name__)
NEW_YORK = ZoneInfo("America/New_York")
DEFAULT_SYMBOLS = ("SPY", "QQQ", "IWM", "DIA")
LIVE_TRADING_HOSTS = frozenset({"api.alpaca.markets"})
SYMBOL_PATTERN = re.compile(r"^[A-Z][A-Z0-9.]{0,9}$")
EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130
# Position-free checks first (the options ones open no position); the stream check before the
# share is bought.
CHECKS: tuple[Check, ...] = (
    *ANSWER_CHECKS,
    *ORDER_CHECKS,
    *OPTION_CHECKS,
    STREAM_CHECK,
    *POSITION_CHECKS,
)


class VerifyRefused(Exception):
    """Bad input or configuration: nothing was placed; the message is the one line to print."""


class VerifyOptions(BaseModel):
    """What the operator asked for."""

    model_config = ConfigDict(frozen=True)

    symbol: str | None = None
    with_position: bool = False


class CheckResult(BaseModel):
    """One assumption and what the broker did."""

    model_config = ConfigDict(frozen=True)

    name: str
    assumption: str
    expected: str
    observed: str
    verdict: Verdict
    affects: str = Field(description="the guard behaviour that relies on this assumption")
    note: str | None = None
    seconds: float


class VerifyTarget(BaseModel):
    """Where the checks ran."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["local paper broker", "paper", "live"]
    trading_url: str
    stream_url: str
    symbol: str
    reference_price: Decimal
    market_open: bool
    with_position: bool


class VerifySummary(BaseModel):
    """Counts and the one verdict."""

    model_config = ConfigDict(frozen=True)

    passed: int
    failed: int
    skipped: int
    ok: bool = Field(description="no FAIL, the cleanup complete, not interrupted")


class VerifyReport(BaseModel):
    """The `broker verify --json` document."""

    model_config = ConfigDict(frozen=True)

    schema_version: Literal[1] = 1
    generated_at: datetime
    target: VerifyTarget
    checks: list[CheckResult]
    cleanup: CleanupReport
    interrupted: bool
    summary: VerifySummary


def exit_code(report: VerifyReport) -> int:
    """130 when interrupted, 1 on any FAIL or an incomplete cleanup, else 0."""
    if report.interrupted:
        return EXIT_INTERRUPTED
    return EXIT_OK if report.summary.ok else EXIT_FAILED


# ---- refusing before anything is placed -------------------------------------------------
def live_refusal(settings: Settings, endpoint: BrokerEndpoint, allow_live: bool) -> str | None:
    """Why a run against this endpoint is refused (None: it may run)."""
    host = urlsplit(endpoint.trading_url).hostname or ""
    if endpoint.paper and host not in LIVE_TRADING_HOSTS:
        return None
    if host in LIVE_TRADING_HOSTS and settings.trading_mode != "live":
        return (
            f"ALPACA_TRADING_URL points at the live API ({host}) while TRADING_MODE is "
            f"{settings.trading_mode}; broker verify refuses to place orders there"
        )
    if not allow_live:
        return (
            "the configured broker is a LIVE account: broker verify places (tiny, far-priced) "
            "orders there only with --allow-live"
        )
    if settings.trading_mode != "live" or settings.trading_live_confirm != LIVE_CONFIRMATION:
        return (
            "--allow-live also needs TRADING_MODE=live and "
            f"TRADING_LIVE_CONFIRM={LIVE_CONFIRMATION}"
        )
    return None


def normalized_symbol(raw: str) -> str:
    """An upper-case ticker, or VerifyRefused."""
    symbol = raw.strip().upper()
    if not SYMBOL_PATTERN.match(symbol):
        raise VerifyRefused(f"--symbol {raw!r} is not a ticker symbol (e.g. SPY)")
    return symbol


def prepare(
    endpoint: BrokerEndpoint, options: VerifyOptions, gateway: AlpacaGateway | None = None
) -> VerifySession:
    """Connect, pick the symbol and its reference price; VerifyRefused if the run cannot start."""
    gateway = gateway or AlpacaGateway(endpoint, read_timeout_s=READ_TIMEOUT_S)
    where = endpoint.trading_url
    try:
        account = gateway.get_account()
        if account.trading_blocked or account.account_blocked:
            raise VerifyRefused(f"the account at {where} is blocked from trading")
        held = {p.symbol for p in gateway.get_positions() if p.qty != 0}
        ordered = {o.symbol for o in gateway.get_open_orders()}
        symbol = _pick_symbol(gateway, options.symbol, held, ordered)
        price = _reference_price(gateway, symbol)
        clock = gateway.get_clock()
    except AuthFailed as exc:
        raise VerifyRefused(
            f"the broker at {where} refused the credentials: {exc.message}"
        ) from None
    except BrokerError as exc:
        raise VerifyRefused(
            f"cannot use the broker at {where}: {type(exc).__name__}: {exc.message}"
        ) from None
    return VerifySession(
        endpoint,
        symbol,
        price,
        market_open=clock.is_open,
        with_position=options.with_position,
        today=clock.timestamp.astimezone(NEW_YORK).date(),
        gateway=gateway,
    )


def _pick_symbol(
    gateway: AlpacaGateway, wanted: str | None, held: set[str], ordered: set[str]
) -> str:
    if wanted is not None:
        symbol = normalized_symbol(wanted)
        if symbol in held:
            raise VerifyRefused(f"the account holds {symbol}; name one it does not hold")
        if symbol in ordered:
            raise VerifyRefused(f"the account has open orders on {symbol}; name another symbol")
        asset = find_asset(gateway, symbol)
        if asset is None:
            raise VerifyRefused(f"the broker does not know {symbol}")
        if not asset.tradable:
            raise VerifyRefused(f"{symbol} is not tradable at this broker")
        return symbol
    for symbol in DEFAULT_SYMBOLS:
        if symbol in held or symbol in ordered:
            continue
        asset = find_asset(gateway, symbol)
        if asset is not None and asset.tradable:
            return symbol
    raise VerifyRefused(
        f"the account holds or trades each of {', '.join(DEFAULT_SYMBOLS)}; name a symbol "
        "it does not hold with --symbol"
    )


def _reference_price(gateway: AlpacaGateway, symbol: str) -> Decimal:
    quote = gateway.latest_quotes([symbol])[0]
    if quote.bid > 0 and quote.ask > 0:
        return (quote.bid + quote.ask) / 2
    if quote.ask > 0 or quote.bid > 0:
        return max(quote.ask, quote.bid)
    raise VerifyRefused(f"no quote for {symbol}: the far-from-market prices need one")


class InterruptGuard:
    """Ctrl-C stops the checks at once, but never the cleanup that follows them."""

    def __init__(self) -> None:
        self.interrupted = False
        self.cleaning = False
        self._previous: Any = None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.interrupted = True
        if not self.cleaning:
            raise KeyboardInterrupt
        logger.warning("interrupt received during cleanup; finishing the cleanup first")

    @contextmanager
    def installed(self) -> Iterator[InterruptGuard]:
        """Trap SIGINT for the duration (only the main thread can)."""
        main = threading.current_thread() is threading.main_thread()
        if main:
            self._previous = signal.signal(signal.SIGINT, self._handle)
        try:
            yield self
        finally:
            if main:
                signal.signal(signal.SIGINT, self._previous)


# ---- running ----------------------------------------------------------------------------
def _precondition(session: VerifySession, needs: Needs) -> str | None:
    if needs is Needs.POSITION and not session.with_position:
        return (
            f"needs --with-position (buys 1 share of {session.symbol} at market and sells it "
            "at the end)"
        )
    if needs is Needs.POSITION and not session.market_open:
        return "the market is closed: a 1-share market buy would not fill"
    if needs is Needs.OPEN_MARKET and not session.market_open:
        return "the market is closed: orders wait as accepted, so nothing is working"
    return None


def run_check(session: VerifySession, check: Check) -> CheckResult:
    """Run one check; anything it raises is its own FAIL, never the run's end."""
    started = time.monotonic()
    seen: Observed
    try:
        reason = _precondition(session, check.needs)
        if reason is not None:
            raise Skip(reason)
        seen = check.probe(session)
    except Skip as skip:
        seen = Observed(verdict=Verdict.SKIP, observed=skip.reason)
    except APIError as exc:
        seen = failed(f"could not check: {answer_of(exc).describe()}")
    except BrokerError as exc:
        seen = failed(f"could not check: {type(exc).__name__}: {exc.message}")
    except Exception as exc:  # a broken check must not stop the others, nor the cleanup
        logger.debug("check %s failed", check.name, exc_info=True)
        seen = failed(f"could not check: {type(exc).__name__}: {exc}")
    redact = _redactor(session.endpoint)
    return CheckResult(
        name=check.name,
        assumption=check.assumption,
        expected=check.expected,
        observed=redact(seen.observed),
        verdict=seen.verdict,
        affects=check.affects,
        note=redact(seen.note) if seen.note else None,
        seconds=round(time.monotonic() - started, 2),
    )


def run_verify(
    endpoint: BrokerEndpoint,
    options: VerifyOptions,
    *,
    progress: Callable[[CheckResult], None] | None = None,
    checks: Iterable[Check] = CHECKS,
    gateway: AlpacaGateway | None = None,
) -> VerifyReport:
    """Prepare, run every check, clean up (also on Ctrl-C) and report."""
    session = prepare(endpoint, options, gateway)
    results: list[CheckResult] = []
    guard = InterruptGuard()
    with guard.installed():
        try:
            for check in checks:
                result = run_check(session, check)
                results.append(result)
                if progress is not None:
                    progress(result)
        except KeyboardInterrupt:
            guard.interrupted = True
        finally:
            guard.cleaning = True
            cleanup = session.cleanup()
    redact = _redactor(endpoint)
    cleanup = cleanup.model_copy(update={"errors": [redact(e) for e in cleanup.errors]})
    counts = {v: sum(1 for r in results if r.verdict is v) for v in Verdict}
    return VerifyReport(
        generated_at=datetime.now(UTC),
        target=VerifyTarget(
            kind=_kind(endpoint),
            trading_url=endpoint.trading_url,
            stream_url=endpoint.stream_url,
            symbol=session.symbol,
            reference_price=session.reference_price.quantize(Decimal("0.0001")),
            market_open=session.market_open,
            with_position=session.with_position,
        ),
        checks=results,
        cleanup=cleanup,
        interrupted=guard.interrupted,
        summary=VerifySummary(
            passed=counts[Verdict.PASS],
            failed=counts[Verdict.FAIL],
            skipped=counts[Verdict.SKIP],
            ok=counts[Verdict.FAIL] == 0 and cleanup.complete and not guard.interrupted,
        ),
    )


def _kind(endpoint: BrokerEndpoint) -> Literal["local paper broker", "paper", "live"]:
    if endpoint.local:
        return "local paper broker"
    return "paper" if endpoint.paper else "live"


def _redactor(endpoint: BrokerEndpoint) -> Callable[[str], str]:
    secrets = [s.get_secret_value() for s in (endpoint.key_id, endpoint.secret_key)]

    def redact(text: str) -> str:
        for secret in secrets:
            if secret:
                text = text.replace(secret, "***")
        return text

    return redact

"""The broker for a CLI command: metered by the account's budget, patient with rate limits.

Every CLI broker call goes through `cli_broker`: the workers' MeteredGateway and the budget
they share (through the ledger's PostgreSQL; counted in this process when it cannot be
reached). A 429 or a spent budget is waited out for up to BROKER_CLI_WAIT_S, with one line on
stderr (stdout, and so --json output, stays clean); after that the command fails with
EXIT_RATE_LIMITED.
"""

from __future__ import annotations

import logging
import math
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import asyncpg

from broker import budget as budget_module
from broker.alpaca import READ_TIMEOUT_S, AlpacaGateway
from broker.budget import BrokerBudget
from broker.endpoint import broker_endpoint
from broker.errors import BrokerError, BudgetExhausted, RateLimited
from broker.metered import MeteredGateway, retry_in
from cli.output import fail
from clients import make_pool
from settings import ConfigError, Settings

EXIT_RATE_LIMITED = 75  # sysexits' EX_TEMPFAIL: nothing is wrong, try again later

# The budget's log lines (a 429 recorded, PostgreSQL out of reach) are for the workers' logs;
# a command speaks through its own stderr line and `status` shows whether the budget is shared.
logging.getLogger(budget_module.__name__).addHandler(logging.NullHandler())


class WaitLine:
    """Tells the operator, once per command, that it waits out a rate limit and for how long."""

    def __init__(self) -> None:
        self.told = False

    def __call__(self, exc: BrokerError, wait_s: float) -> None:
        """Print the one line on stderr (later waits of the same command stay quiet)."""
        if self.told:
            return
        self.told = True
        seconds = math.ceil(wait_s)
        if isinstance(exc, BudgetExhausted) and not exc.broker_limited:
            line = f"broker-call budget spent; waiting {seconds} s for a free slot"
        else:
            line = f"broker rate limit reached; waiting {seconds} s for the reset"
        sys.stderr.write(f"{line} (Ctrl-C to stop)\n")
        sys.stderr.flush()


def metered_broker(
    settings: Settings, pool: asyncpg.Pool | None, read_timeout_s: float = READ_TIMEOUT_S
) -> MeteredGateway:
    """The metered broker of a command that has the ledger's pool (None: counted in process)."""
    endpoint = broker_endpoint(settings)
    return MeteredGateway(
        AlpacaGateway(endpoint, read_timeout_s=read_timeout_s),
        BrokerBudget.for_endpoint(pool, endpoint, settings.broker_budget),
        patience=timedelta(seconds=settings.broker_cli_wait_s),
        on_wait=WaitLine(),
    )


@asynccontextmanager
async def cli_broker(settings: Settings) -> AsyncIterator[MeteredGateway]:
    """The metered broker for one command, with a small pool of its own for the budget."""
    pool = await _budget_pool(settings)
    try:
        yield metered_broker(settings, pool)
    finally:
        if pool is not None:
            await pool.close()


async def _budget_pool(settings: Settings) -> asyncpg.Pool | None:
    """A small pool for the shared budget; None (the budget counts in process) if unreachable."""
    try:
        return await make_pool(settings, min_size=1, max_size=2)
    except ConfigError:
        return None


def broker_failed(exc: BrokerError, settings: Settings) -> int:
    """Report a broker call that failed; a rate limit exits EXIT_RATE_LIMITED with when to retry."""
    if isinstance(exc, RateLimited | BudgetExhausted):
        return fail(
            f"broker rate limit: not over within BROKER_CLI_WAIT_S={settings.broker_cli_wait_s:g} "
            f"s; try again in {math.ceil(retry_in(exc))} s ({type(exc).__name__}: {exc.message})",
            code=EXIT_RATE_LIMITED,
        )
    return fail(f"the broker could not be asked ({type(exc).__name__}: {exc.message})")

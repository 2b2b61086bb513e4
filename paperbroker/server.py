"""Assemble the broker, its app, middleware (auth, rate limit, faults) and lifecycle."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from decimal import Decimal
from pathlib import Path

from aiohttp import web

from paperbroker.admin import SERVER_KEY, admin_routes
from paperbroker.assets import Asset, make_asset
from paperbroker.broker import Broker
from paperbroker.calendar import demo_session_time, nyse_calendar
from paperbroker.clock import ClockMode, SimClock
from paperbroker.config import BrokerConfig
from paperbroker.errors import ApiError
from paperbroker.faults import FaultBook, FaultRule
from paperbroker.http_activities import activities_routes
from paperbroker.http_data import MARKET_DATA_KEY, PAGE_LIMIT_KEY, data_routes
from paperbroker.http_options import register_options
from paperbroker.http_trading import BROKER_KEY, json_response, trading_routes
from paperbroker.marketdata import MarketData
from paperbroker.prices import PriceEngine, SymbolParams
from paperbroker.ratelimit import RateLimiter
from paperbroker.replay import ReplayPath, load_replay_csv
from paperbroker.snapshot import read_snapshot, restore_snapshot, write_snapshot
from paperbroker.stream import StreamHub

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
STREAM_PATH = "/stream"
UNMATCHED_ROUTE = "(unmatched)"
SETTLE_LIMIT_S = 10.0


class RequestCounter:
    """Authenticated /v2 requests (trading and market data), in total and per route.

    Alpaca's limits are per account and minute, so this is the figure to watch; /_sim and
    the stream are not counted. Routes are keyed by method and pattern
    (`GET /v2/orders/{order_id}`), so per-order calls add up under one key.
    """

    def __init__(self) -> None:
        self.total = 0
        self.by_route: dict[str, int] = {}

    def count(self, request: web.Request) -> None:
        """Count one request (rate-limited and fault-injected ones included)."""
        resource = request.match_info.route.resource
        pattern = resource.canonical if resource is not None else UNMATCHED_ROUTE
        route = f"{request.method} {pattern}"
        self.total += 1
        self.by_route[route] = self.by_route.get(route, 0) + 1

    def reset(self) -> None:
        """Start counting from zero."""
        self.total = 0
        self.by_route = {}

    def as_json(self) -> dict[str, object]:
        """`{"total": n, "by_route": {...}}` for /_sim/state."""
        return {"total": self.total, "by_route": dict(sorted(self.by_route.items()))}


class PaperBrokerServer:
    """The whole paper broker: state, prices, clock, REST + websocket server."""

    def __init__(self, config: BrokerConfig) -> None:
        self.config = config
        self.calendar = nyse_calendar()
        self._replays: dict[str, ReplayPath] = (
            load_replay_csv(config.replay_csv) if config.replay_csv else {}
        )
        self.clock = SimClock(config.clock, self._start_time(), config.rate)
        self.assets: dict[str, Asset] = {}
        for symbol in [*config.symbols, *self._replays]:
            asset = make_asset(symbol)
            self.assets[asset.symbol] = asset
        self.broker = Broker(
            self.clock,
            self.calendar,
            self._new_prices(),
            self.assets,
            config.cash,
            config.seed,
            fidelity=config.fidelity(),
            options_level=config.options_level,
        )
        self.broker.matcher.partial_fill_probability = config.partial_fill_probability
        self.broker.route_delay = config.fill_delay_ms / 1000
        self.market_data = MarketData(self.broker, self.calendar)
        self.faults = FaultBook(config.seed)
        self.limiter = RateLimiter(config.rate_limit)
        self.requests = RequestCounter()
        self.hub = StreamHub(
            lambda: self.broker.book,
            config.key_id.get_secret_value(),
            config.secret_key.get_secret_value(),
        )
        self.broker.listeners.append(self.hub.publish)
        if config.state_file is not None and config.state_file.exists():
            self.load(config.state_file)
        self._runner: web.AppRunner | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self.port = config.port

    def _start_time(self) -> datetime | None:
        if self.config.start is not None:
            return self.config.start
        if self.config.clock in (ClockMode.OFFSET, ClockMode.MANUAL, ClockMode.ACCELERATED):
            real = SimClock(ClockMode.REAL).now()
            if self.config.clock is ClockMode.ACCELERATED:
                return real
            return demo_session_time(real, self.calendar)
        return None

    def _new_prices(self) -> PriceEngine:
        params = [
            SymbolParams(
                symbol=a.symbol,
                price=a.seed_price,
                volatility=self.config.volatility,
                drift=self.config.drift,
                spread_bps=self.config.spread_bps,
            )
            for a in self.assets.values()
        ]
        return PriceEngine(params, self.config.seed, self.clock.now(), self.calendar, self._replays)

    # ---- admin operations ---------------------------------------------------------------
    def reset(self, cash: Decimal | None = None, when: datetime | None = None) -> None:
        """Fresh account and price paths; optionally move the clock anywhere."""
        if when is not None:
            self.clock.set(when)
        self.broker.reset(cash if cash is not None else self.config.cash, self._new_prices())
        self.broker.fidelity.adopt(self.config.fidelity())
        self.market_data.clear()
        self.faults.clear()
        self.limiter.reset()
        self.requests.reset()

    def save(self, path: Path | None = None) -> Path:
        """Write a snapshot to `path` (default: the configured state file)."""
        target = path or self.config.state_file
        if target is None:
            raise ApiError(422, "no path given and no --state-file configured", 42210000)
        write_snapshot(self.broker, target)
        log.info("state saved to %s", target)
        return target

    def load(self, path: Path | None = None) -> Path:
        """Restore a snapshot from `path` (default: the configured state file)."""
        source = path or self.config.state_file
        if source is None or not source.exists():
            raise ApiError(422, "state file not found", 42210000)
        restore_snapshot(self.broker, read_snapshot(source))
        self.market_data.clear()
        log.info("state restored from %s", source)
        return source

    async def settle(self) -> None:
        """Wait until no cancel or replace is in flight (at most the longer delay + 1 s, 10 s)."""
        fidelity = self.broker.fidelity
        limit = min(SETTLE_LIMIT_S, max(fidelity.cancel_delay, fidelity.replace_delay) + 1.0)
        idle = asyncio.Event()
        self.broker.pending.when_idle(idle.set)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(idle.wait(), limit)

    # ---- HTTP ---------------------------------------------------------------------------
    def build_app(self) -> web.Application:
        """Create the aiohttp application with every route and the middleware."""
        app = web.Application(middlewares=[self._middleware], client_max_size=1024 * 1024)
        app[BROKER_KEY] = self.broker
        app[MARKET_DATA_KEY] = self.market_data
        app[PAGE_LIMIT_KEY] = self.config.max_bars_page
        app[SERVER_KEY] = self
        app.add_routes(trading_routes)
        app.add_routes(activities_routes)
        app.add_routes(data_routes)
        register_options(app, self.broker, self.calendar)
        app.add_routes(admin_routes)
        app.router.add_get(STREAM_PATH, self.hub.handle)
        return app

    def _authorized(self, request: web.Request) -> str | None:
        key = request.headers.get("APCA-API-KEY-ID", "")
        secret = request.headers.get("APCA-API-SECRET-KEY", "")
        good_key = hmac.compare_digest(key, self.config.key_id.get_secret_value())
        good_secret = hmac.compare_digest(secret, self.config.secret_key.get_secret_value())
        return key if good_key and good_secret else None

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        if path in ("/_sim/health", STREAM_PATH):
            return await handler(request)
        key = self._authorized(request)
        if key is None:
            return json_response({"message": "unauthorized"}, status=401)
        if path.startswith("/_sim/"):
            return await self._call(handler, request)
        if path.startswith("/v2/"):
            self.requests.count(request)
        allowed, headers = self.limiter.hit(key)
        if not allowed:
            response: web.StreamResponse = json_response({"message": "rate limit exceeded"}, 429)
        else:
            rule = self.faults.pick(request.method, path)
            if rule is None:
                response = await self._call(handler, request)
            else:
                response = await self._faulty(rule, handler, request)
        response.headers.update(headers)
        return response

    async def _call(self, handler: Handler, request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiError as error:
            return json_response(error.body(), error.status)
        except web.HTTPNotFound:
            return json_response({"message": "Not Found"}, 404)
        except web.HTTPMethodNotAllowed:
            return json_response({"message": "Method Not Allowed"}, 405)
        except Exception:
            log.exception("unhandled error on %s %s", request.method, request.path)
            return json_response({"code": 50010000, "message": "internal server error"}, 500)

    async def _faulty(
        self, rule: FaultRule, handler: Handler, request: web.Request
    ) -> web.StreamResponse:
        log.info("injecting fault %s on %s %s", rule.id, request.method, request.path)
        if rule.latency_ms:
            await asyncio.sleep(rule.latency_ms / 1000)
        if rule.hang:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), rule.hang_seconds)
        if rule.after:
            await self._call(handler, request)
        elif rule.status == 0:
            return await self._call(handler, request)
        text, content_type = rule.error_body()
        return web.Response(text=text, status=rule.status, content_type=content_type)

    # ---- lifecycle ----------------------------------------------------------------------
    async def start(self) -> None:
        """Bind the port, start serving and start the clock ticker."""
        loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        self.broker.matcher.defer = lambda delay, action: _later(loop, delay, action)
        self._runner = web.AppRunner(self.build_app(), shutdown_timeout=1.0, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.host, self.config.port)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        if sockets:
            self.port = sockets[0].getsockname()[1]
        self._ticker = asyncio.create_task(self._tick())
        log.info(
            "paper broker listening on %s:%s (clock %s)",
            self.config.host,
            self.port,
            self.clock.mode.value,
        )

    async def stop(self) -> None:
        """Stop serving; with a state file configured, save the state first."""
        self._stopping.set()
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        if self.config.state_file is not None:
            self.save()
        await self.hub.drop_all()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.config.tick_seconds)
            if self.clock.mode is ClockMode.MANUAL:
                continue
            try:
                self.broker.sync()
            except Exception:
                log.exception("clock tick failed")


def _later(loop: asyncio.AbstractEventLoop, delay: float, action: Callable[[], None]) -> None:
    def run() -> None:
        try:
            action()
        except Exception:
            log.exception("deferred broker action failed")

    if delay <= 0:
        loop.call_soon(run)
    else:
        loop.call_later(delay, run)

"""GET /v2/account/activities: the options desk's non-trade activities, shaped as Alpaca's.

The desk records an option's exercise (OPEXC), assignment (OPASN) and expiry (OPEXP), and the
shares they move (OPTRD), when they happen (options_exercise.py); this route answers them as
Alpaca's NonTradeActivity objects. Fills (FILL) and cash activities are not recorded here, so
asking for them answers an empty list.

Sources:
* Alpaca "Account Activities" (https://docs.alpaca.markets/docs/account-activities): the NTA
  object is `{activity_type, id, date, net_amount, symbol, qty, per_share_amount}` with money
  and quantities as strings, `id` always `<timestamp>::<uuid>` and usable as `page_token`;
  the list of activity types.
* Alpaca "Retrieve Account Activities of Specific Type"
  (https://docs.alpaca.markets/reference/getaccountactivitiesbytype-1) and its sibling
  getaccountactivities: `activity_types` (comma list) or the type in the path, `date`
  (YYYY-MM-DD or RFC 3339), `after`, `until` (neither "can be used with date": refused),
  `direction` (default desc), `page_size` (default and maximum 100 without `date`; all
  results with `date`), `page_token` (the id of the last activity of the previous page: desc
  ends before it, asc begins after it).
* alpaca-py 0.44 NonTradeActivity needs `id`, `account_id`, `activity_type`, `date`,
  `net_amount` and `description` (it reads `status`, `symbol`, `qty`, `price`,
  `per_share_amount` when present).
An unknown activity type is refused with Alpaca's generic validation code (40010001); the
exact message is not documented, so it is this broker's own.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Any
from uuid import NAMESPACE_URL, uuid5

from aiohttp import web

from paperbroker.calendar import NEW_YORK
from paperbroker.errors import CODE_INVALID, ApiError, unprocessable
from paperbroker.http_trading import BROKER_KEY, json_response
from paperbroker.options_margin import OptionsActivity
from paperbroker.ticks import fmt, fmt_money

PAGE_SIZE_MAX = 100
# Alpaca's activity types (Account Activities, "Activity Types"; alpaca-py 0.44 ActivityType).
ACTIVITY_TYPES = frozenset(
    [
        "FILL",
        "TRANS",
        "MISC",
        "ACATC",
        "ACATS",
        "CFEE",
        "CIL",
        "CSD",
        "CSW",
        "DIV",
        "DIVCGL",
        "DIVCGS",
        "DIVFEE",
        "DIVFT",
        "DIVNRA",
        "DIVROC",
        "DIVTW",
        "DIVTXEX",
        "DIVWH",
        "EXTRD",
        "FEE",
        "FXTRD",
        "INT",
        "INTNRA",
        "INTPNL",
        "INTTW",
        "JNL",
        "JNLC",
        "JNLS",
        "MA",
        "MEM",
        "NC",
        "OCT",
        "OPASN",
        "OPCA",
        "OPCSH",
        "OPEXC",
        "OPEXP",
        "OPTRD",
        "PTC",
        "PTR",
        "REORG",
        "SC",
        "SPIN",
        "SPLIT",
        "SSO",
        "SSP",
        "SWP",
        "VOF",
        "WH",
    ]
)
DESCRIPTIONS = {
    "OPEXC": "Option Exercise",
    "OPASN": "Option Assignment",
    "OPEXP": "Option Expiry",
    "OPTRD": "Option Trade",
}
activities_routes = web.RouteTableDef()


def _invalid(message: str) -> ApiError:
    return unprocessable(message, CODE_INVALID)


def activity_id(index: int, activity: OptionsActivity) -> str:
    """`<yyyymmddHHMMSSmmm>::<uuid>`: sorts by time, then by the order they were recorded."""
    stamp = activity.when.astimezone(UTC).strftime("%Y%m%d%H%M%S%f")[:17]
    unique = uuid5(NAMESPACE_URL, f"paperbroker/activity/{index}/{activity.symbol}")
    return f"{stamp}::{unique}"


def activity_json(index: int, activity: OptionsActivity, account_id: str) -> dict[str, Any]:
    """One NonTradeActivity as Alpaca sends it (money and quantities as strings)."""
    body: dict[str, Any] = {
        "id": activity_id(index, activity),
        "account_id": account_id,
        "activity_type": activity.activity_type,
        "date": activity.when.astimezone(NEW_YORK).date().isoformat(),
        "net_amount": fmt_money(activity.net_amount),
        "description": DESCRIPTIONS.get(activity.activity_type, ""),
        "status": "executed",
        "symbol": activity.symbol,
        "qty": fmt(activity.qty),
    }
    if activity.price is not None:
        body["price"] = fmt(activity.price)
        body["per_share_amount"] = fmt(activity.price)
    return body


def _types(raw: str | None) -> set[str] | None:
    if raw is None or raw.strip() in ("", "None"):
        return None
    wanted = {t.strip().upper() for t in raw.split(",") if t.strip()}
    unknown = sorted(wanted - ACTIVITY_TYPES)
    if unknown:
        raise _invalid(f"invalid activity type: {', '.join(unknown)}")
    return wanted


def _when(raw: str | None, name: str, end_of_day: bool = False) -> datetime | None:
    """A date (New York day) or an RFC 3339 timestamp; 422 otherwise."""
    if raw is None or raw.strip() in ("", "None"):
        return None
    text = raw.strip().replace(" ", "+").replace("Z", "+00:00")
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime.combine(day, time.max if end_of_day else time.min, NEW_YORK)
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise _invalid(f"invalid {name}: {raw}") from exc
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _page_size(raw: str | None, has_date: bool) -> int | None:
    if raw is None or raw.strip() in ("", "None"):
        return None if has_date else PAGE_SIZE_MAX
    try:
        size = int(raw)
    except ValueError as exc:
        raise _invalid(f"invalid page_size: {raw}") from exc
    if size < 1 or (not has_date and size > PAGE_SIZE_MAX):
        raise _invalid(f"invalid page_size: {raw} (1 to {PAGE_SIZE_MAX})")
    return size


def list_activities(query: Any, types: set[str] | None, broker: Any) -> list[dict[str, Any]]:
    """The desk's activities filtered, ordered and paged as Alpaca's query asks."""
    direction = (query.get("direction") or "desc").lower()
    if direction not in ("asc", "desc"):
        raise _invalid(f"invalid direction: {query.get('direction')}")
    on_day = _when(query.get("date"), "date")
    after = _when(query.get("after"), "after")
    until = _when(query.get("until"), "until")
    if on_day is not None and (after is not None or until is not None):
        raise _invalid("date cannot be used with after or until")
    size = _page_size(query.get("page_size"), on_day is not None)
    token = query.get("page_token") or None
    account_id = str(broker.book.account.id)
    rows = [
        activity_json(index, activity, account_id)
        for index, activity in enumerate(broker.options.activities)
        if (types is None or activity.activity_type in types)
        and (on_day is None or activity.when.astimezone(NEW_YORK).date() == on_day.date())
        and (after is None or activity.when > after)
        and (until is None or activity.when < until)
    ]
    rows.sort(key=lambda row: str(row["id"]), reverse=direction == "desc")
    if token is not None:  # ids sort by time: the page continues past the token's id
        rows = [r for r in rows if (str(r["id"]) < token) == (direction == "desc")]
        rows = [r for r in rows if str(r["id"]) != token]
    return rows if size is None else rows[:size]


@activities_routes.get("/v2/account/activities")
async def get_activities(request: web.Request) -> web.Response:
    """GET /v2/account/activities?activity_types=OPEXC,OPASN&..."""
    broker = request.app[BROKER_KEY]
    broker.sync()
    types = _types(request.query.get("activity_types"))
    return json_response(list_activities(request.query, types, broker))


@activities_routes.get("/v2/account/activities/{activity_type}")
async def get_activities_of_type(request: web.Request) -> web.Response:
    """GET /v2/account/activities/{activity_type}?... (one type, in the path)."""
    broker = request.app[BROKER_KEY]
    broker.sync()
    types = _types(request.match_info["activity_type"])
    return json_response(list_activities(request.query, types, broker))

"""A small PromQL evaluator for the alert-rule tests: recorded scrapes in, alert verdicts out.

It walks the AST `promql_parser.parse` returns and supports exactly what ops/alerts.yml uses;
anything else raises `Unsupported`, so a rule cannot quietly evaluate to something Prometheus
would not. Semantics follow Prometheus (v2.45 / v3 where they agree):

- Recorded scrapes: Prometheus text exposition, each scrape preceded by a header comment
  `# scrape at=<unix s> job=<job> instance=<host:port> up=<1|0>` (exposition parsers skip
  comments). Every sample gets the target's `job` and `instance` labels, and each scrape adds
  `up{job,instance}`, as Prometheus does. A failed scrape (up=0) has no samples.
- Instant selectors read a target's latest scrape at or before the evaluation time within the
  5 minute lookback; a series missing from that scrape is stale (Prometheus's stale markers).
  `offset` moves the evaluation time back.
- Range selectors `[r]` take the samples with time in (t - r, t].
- `rate`/`increase` use Prometheus's extrapolation (counter resets, extrapolation to the
  window edges, never below zero for a counter); `min_over_time`, `changes`.
- `histogram_quantile` over classic `le` buckets, with Prometheus's interpolation and its
  NaN when a group has no observations (a NaN compares false, so such a group never fires).
- `absent`, `time`, `sum`/`max`/`min` with `by`/`without`, comparisons of a vector with a
  scalar (filtering), scalar arithmetic, and `and`/`or`/`unless` with `on`/`ignoring`.

An alert's `for:` is checked the way Prometheus's evaluation loop would see it: the rule is
evaluated at every recorded scrape time in [last - for, last]; a label set fires when it is in
every one of those results, and the recording must start at or before last - for (else the
window is not covered and `for_window_results` raises).
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import pairwise

import promql_parser as pp

LOOKBACK_S = 300.0

Labels = tuple[tuple[str, str], ...]


class Unsupported(ValueError):
    """The expression uses PromQL this evaluator does not implement."""


class BadScrape(ValueError):
    """A recorded scrape file is malformed."""


@dataclass(frozen=True)
class Sample:
    """One element of an instant vector."""

    labels: Labels
    value: float

    def label(self, name: str) -> str:
        """The value of one label ('' when absent, as in PromQL)."""
        return dict(self.labels).get(name, "")


Vector = list[Sample]
Value = Vector | float


@dataclass
class Scrape:
    """One scrape of one target at one time."""

    at: float
    job: str
    instance: str
    up: bool
    series: dict[Labels, float] = field(default_factory=dict)


def _labels(mapping: dict[str, str]) -> Labels:
    return tuple(sorted(mapping.items()))


# --- the exposition format --------------------------------------------------------------------

_HEADER = re.compile(r"#\s*scrape\s+(?P<fields>.*)$")
_SERIES = re.compile(r"(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>.*)\})?\s+(?P<rest>.+)$")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(?:,|$)')


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), value)


def _parse_labels(text: str, line_no: int) -> dict[str, str]:
    labels: dict[str, str] = {}
    pos = 0
    while pos < len(text.strip()):
        match = _LABEL.match(text, pos)
        if match is None:
            raise BadScrape(f"line {line_no}: bad label set {{{text}}}")
        labels[match.group(1)] = _unescape(match.group(2))
        pos = match.end()
    return labels


def parse_scrapes(text: str) -> list[Scrape]:
    """The scrapes in one recorded file, in file order."""
    scrapes: list[Scrape] = []
    for line_no, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        header = _HEADER.match(line)
        if header is not None:
            fields = dict(f.split("=", 1) for f in header.group("fields").split())
            try:
                scrapes.append(
                    Scrape(
                        at=float(fields["at"]),
                        job=fields["job"],
                        instance=fields["instance"],
                        up=fields["up"] == "1",
                    )
                )
            except KeyError as exc:
                raise BadScrape(f"line {line_no}: scrape header lacks {exc}") from None
            continue
        if line.startswith("#"):
            continue  # HELP, TYPE and other comments
        if not scrapes:
            raise BadScrape(f"line {line_no}: a sample before the first '# scrape' header")
        scrape = scrapes[-1]
        if not scrape.up:
            raise BadScrape(f"line {line_no}: a failed scrape (up=0) has no samples")
        match = _SERIES.match(line)
        if match is None:
            raise BadScrape(f"line {line_no}: not a sample: {line}")
        rest = match.group("rest").split()
        if len(rest) != 1:
            raise BadScrape(f"line {line_no}: samples carry no timestamp here: {line}")
        labels = _parse_labels(match.group("labels") or "", line_no)
        labels.update(__name__=match.group("name"), job=scrape.job, instance=scrape.instance)
        key = _labels(labels)
        if key in scrape.series:
            raise BadScrape(f"line {line_no}: series repeated in one scrape: {line}")
        scrape.series[key] = float(rest[0])
    for scrape in scrapes:
        up = _labels({"__name__": "up", "job": scrape.job, "instance": scrape.instance})
        scrape.series[up] = 1.0 if scrape.up else 0.0
    return scrapes


# --- evaluation -------------------------------------------------------------------------------


def _matcher(m: pp.Matcher) -> Callable[[str], bool]:
    if m.op == pp.MatchOp.Equal:
        return lambda v: v == m.value
    if m.op == pp.MatchOp.NotEqual:
        return lambda v: v != m.value
    pattern = re.compile(m.value)
    if m.op == pp.MatchOp.Re:
        return lambda v: pattern.fullmatch(v) is not None
    return lambda v: pattern.fullmatch(v) is None


def _without(labels: Labels, names: Iterable[str]) -> Labels:
    drop = set(names)
    return tuple((k, v) for k, v in labels if k not in drop)


def _only(labels: Labels, names: Iterable[str]) -> Labels:
    keep = set(names)
    return tuple((k, v) for k, v in labels if k in keep)


_COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    ">": lambda a, b: a > b,
    "<": lambda a, b: a < b,
    ">=": lambda a, b: a >= b,
    "<=": lambda a, b: a <= b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
}
_ARITHMETIC: dict[str, Callable[[float, float], float]] = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": lambda a, b: a / b if b != 0 else math.copysign(math.inf, a) if a else math.nan,
}
_AGGREGATIONS: dict[str, Callable[[list[float]], float]] = {"sum": sum, "max": max, "min": min}


class Evaluator:
    """Evaluates expressions at a time against a set of recorded scrapes."""

    def __init__(self, scrapes: list[Scrape]) -> None:
        self._by_target: dict[tuple[str, str], list[Scrape]] = defaultdict(list)
        for scrape in sorted(scrapes, key=lambda s: s.at):
            self._by_target[(scrape.job, scrape.instance)].append(scrape)

    def times(self) -> list[float]:
        """Every recorded scrape time, ascending."""
        return sorted({s.at for scrapes in self._by_target.values() for s in scrapes})

    def evaluate(self, expr: str | pp.Expr, at: float) -> Value:
        """The value of `expr` at unix time `at`."""
        node = pp.parse(expr) if isinstance(expr, str) else expr
        return self._eval(node, float(at))

    # -- nodes --

    def _eval(self, node: pp.Expr, at: float) -> Value:
        if isinstance(node, pp.NumberLiteral):
            return float(node.val)
        if isinstance(node, pp.ParenExpr):
            return self._eval(node.expr, at)
        if isinstance(node, pp.VectorSelector):
            return self._instant(node, at)
        if isinstance(node, pp.BinaryExpr):
            return self._binary(node, at)
        if isinstance(node, pp.AggregateExpr):
            return self._aggregate(node, at)
        if isinstance(node, pp.Call):
            return self._call(node, at)
        if isinstance(node, pp.MatrixSelector):
            raise Unsupported(f"a range selector outside a supported function: {node}")
        raise Unsupported(f"{type(node).__name__} is not supported: {node}")

    def _select(self, selector: pp.VectorSelector) -> Callable[[Labels], bool]:
        if selector.at is not None:
            raise Unsupported(f"the @ modifier is not supported: {selector}")
        if selector.matchers.or_matchers:
            raise Unsupported(f"'or' inside a selector is not supported: {selector}")
        checks = [(m.name, _matcher(m)) for m in selector.matchers.matchers]
        if selector.name is not None:
            name_matcher = pp.Matcher(pp.MatchOp.Equal, "__name__", selector.name)
            checks.append(("__name__", _matcher(name_matcher)))

        def matches(labels: Labels) -> bool:
            values = dict(labels)
            return all(check(values.get(name, "")) for name, check in checks)

        return matches

    def _instant(self, selector: pp.VectorSelector, at: float) -> Vector:
        matches = self._select(selector)
        at -= selector.offset.total_seconds() if selector.offset else 0.0
        out: Vector = []
        for scrapes in self._by_target.values():
            latest = [s for s in scrapes if at - LOOKBACK_S < s.at <= at]
            if not latest:
                continue
            out.extend(Sample(k, v) for k, v in latest[-1].series.items() if matches(k))
        return out

    def _range(self, node: pp.Expr, at: float) -> dict[Labels, list[tuple[float, float]]]:
        if not isinstance(node, pp.MatrixSelector):
            raise Unsupported(f"expected a range selector, got {node}")
        selector = node.vector_selector
        matches = self._select(selector)
        at -= selector.offset.total_seconds() if selector.offset else 0.0
        start = at - node.range.total_seconds()
        points: dict[Labels, list[tuple[float, float]]] = defaultdict(list)
        for scrapes in self._by_target.values():
            for scrape in scrapes:
                if start < scrape.at <= at:
                    for key, value in scrape.series.items():
                        if matches(key):
                            points[key].append((scrape.at, value))
        return points

    def _binary(self, node: pp.BinaryExpr, at: float) -> Value:
        op = str(node.op)
        modifier = node.modifier
        if op in ("and", "or", "unless"):
            return self._set_op(op, node, at)
        if modifier is not None and modifier.return_bool:
            raise Unsupported(f"the bool modifier is not supported: {node}")
        lhs, rhs = self._eval(node.lhs, at), self._eval(node.rhs, at)
        if isinstance(lhs, list) and isinstance(rhs, list):
            raise Unsupported(f"vector-to-vector {op} is not supported: {node}")
        if op in _COMPARISONS:
            compare = _COMPARISONS[op]
            if isinstance(lhs, list) and isinstance(rhs, float):
                return [s for s in lhs if compare(s.value, rhs)]
            if isinstance(lhs, float) and isinstance(rhs, list):
                return [s for s in rhs if compare(lhs, s.value)]
            raise Unsupported(f"a scalar comparison without bool: {node}")
        if op in _ARITHMETIC:
            apply = _ARITHMETIC[op]
            if isinstance(lhs, float) and isinstance(rhs, float):
                return apply(lhs, rhs)
            if isinstance(lhs, list) and isinstance(rhs, float):
                return [Sample(_without(s.labels, ["__name__"]), apply(s.value, rhs)) for s in lhs]
            if isinstance(lhs, float) and isinstance(rhs, list):
                return [Sample(_without(s.labels, ["__name__"]), apply(lhs, s.value)) for s in rhs]
        raise Unsupported(f"operator {op} is not supported: {node}")

    def _set_op(self, op: str, node: pp.BinaryExpr, at: float) -> Vector:
        lhs, rhs = self._eval(node.lhs, at), self._eval(node.rhs, at)
        if not isinstance(lhs, list) or not isinstance(rhs, list):
            raise Unsupported(f"{op} needs two instant vectors: {node}")
        matching = node.modifier.matching if node.modifier is not None else None

        def signature(sample: Sample) -> Labels:
            if matching is not None and matching.type == pp.LabelModifierType.Include:
                return _only(sample.labels, matching.labels)
            ignored = ["__name__", *(matching.labels if matching is not None else [])]
            return _without(sample.labels, ignored)

        right = {signature(s) for s in rhs}
        if op == "and":
            return [s for s in lhs if signature(s) in right]
        if op == "unless":
            return [s for s in lhs if signature(s) not in right]
        left = {signature(s) for s in lhs}
        return lhs + [s for s in rhs if signature(s) not in left]

    def _aggregate(self, node: pp.AggregateExpr, at: float) -> Vector:
        op = str(node.op)
        if op not in _AGGREGATIONS or node.param is not None:
            raise Unsupported(f"aggregation {op} is not supported: {node}")
        inner = self._eval(node.expr, at)
        if not isinstance(inner, list):
            raise Unsupported(f"{op} needs an instant vector: {node}")
        modifier = node.modifier
        groups: dict[Labels, list[float]] = defaultdict(list)
        for sample in inner:
            if modifier is None:
                key: Labels = ()
            elif modifier.type == pp.AggModifierType.By:
                key = _only(sample.labels, modifier.labels)
            else:
                key = _without(sample.labels, ["__name__", *modifier.labels])
            groups[key].append(sample.value)
        return [Sample(key, _AGGREGATIONS[op](values)) for key, values in groups.items()]

    def _call(self, node: pp.Call, at: float) -> Value:
        name = node.func.name
        args = node.args
        if name == "time" and not args:
            return at
        if name in ("rate", "increase") and len(args) == 1:
            seconds = args[0].range.total_seconds()
            out: Vector = []
            for key, points in self._range(args[0], at).items():
                value = _extrapolated_increase(points, at - seconds, at)
                if value is not None:
                    out.append(
                        Sample(
                            _without(key, ["__name__"]),
                            value / seconds if name == "rate" else value,
                        )
                    )
            return out
        if name in ("min_over_time", "changes") and len(args) == 1:
            out = []
            for key, points in self._range(args[0], at).items():
                values = [v for _, v in points]
                if name == "min_over_time":
                    result = min(values)
                else:
                    result = float(sum(1 for a, b in pairwise(values) if a != b))
                out.append(Sample(_without(key, ["__name__"]), result))
            return out
        if name == "absent" and len(args) == 1:
            inner = self._eval(args[0], at)
            if not isinstance(inner, list):
                raise Unsupported(f"absent needs an instant vector: {node}")
            if inner:
                return []
            labels: dict[str, str] = {}
            if isinstance(args[0], pp.VectorSelector):
                for m in args[0].matchers.matchers:
                    if m.op == pp.MatchOp.Equal and m.name != "__name__":
                        labels[m.name] = m.value
            return [Sample(_labels(labels), 1.0)]
        if name == "histogram_quantile" and len(args) == 2:
            q = self._eval(args[0], at)
            buckets = self._eval(args[1], at)
            if not isinstance(q, float) or not isinstance(buckets, list):
                raise Unsupported(f"histogram_quantile(scalar, vector) only: {node}")
            return _histogram_quantile(q, buckets)
        raise Unsupported(f"function {name} with {len(args)} argument(s) is not supported")

    # -- alerts --

    def for_window_results(self, expr: str, for_seconds: float) -> list[tuple[float, Vector]]:
        """The rule's results at every recorded time in [last - for, last]."""
        times = self.times()
        if not times:
            raise BadScrape("no scrapes recorded")
        end = times[-1]
        if times[0] > end - for_seconds:
            raise BadScrape(
                f"the scrapes span {end - times[0]:.0f} s; a 'for' of {for_seconds:.0f} s "
                "needs a scrape at or before its start"
            )
        node = pp.parse(expr)
        results: list[tuple[float, Vector]] = []
        for t in times:
            if t >= end - for_seconds:
                value = self._eval(node, t)
                if not isinstance(value, list):
                    raise Unsupported(f"an alert expression must be a vector: {expr}")
                results.append((t, value))
        return results

    def firing(self, expr: str, for_seconds: float) -> list[Labels]:
        """The label sets the alert fires for at the last recorded time."""
        results = self.for_window_results(expr, for_seconds)
        active = [{s.labels for s in vector} for _, vector in results]
        return sorted(set.intersection(*active))


def _extrapolated_increase(
    points: list[tuple[float, float]], range_start: float, range_end: float
) -> float | None:
    """Prometheus's extrapolatedRate for a counter, before dividing by the range."""
    if len(points) < 2:
        return None
    first_t, first_v = points[0]
    last_t, last_v = points[-1]
    result = last_v - first_v
    previous = first_v
    for _, value in points[1:]:
        if value < previous:  # a counter reset: the counter restarted from zero
            result += previous
        previous = value
    sampled = last_t - first_t
    average_gap = sampled / (len(points) - 1)
    threshold = average_gap * 1.1
    to_start = first_t - range_start
    to_end = range_end - last_t
    if to_start >= threshold:
        to_start = average_gap / 2
    if result > 0 and first_v >= 0:
        # a counter does not extrapolate below zero
        to_start = min(to_start, sampled * (first_v / result))
    if to_end >= threshold:
        to_end = average_gap / 2
    return result * (sampled + to_start + to_end) / sampled


def _histogram_quantile(q: float, buckets: Vector) -> Vector:
    """histogram_quantile over classic buckets, grouped by every label but `le`."""
    groups: dict[Labels, list[tuple[float, float]]] = defaultdict(list)
    for sample in buckets:
        le = sample.label("le")
        if not le:
            continue
        key = _without(sample.labels, ["__name__", "le"])
        groups[key].append((float(le), sample.value))
    out: Vector = []
    for key, bounds in groups.items():
        out.append(Sample(key, _quantile(q, sorted(bounds))))
    return out


def _quantile(q: float, bounds: list[tuple[float, float]]) -> float:
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    if not bounds or bounds[-1][0] != math.inf or len(bounds) < 2:
        return math.nan
    # Counts must not decrease with the bound (they can, from scrapes taken mid-update).
    monotonic: list[tuple[float, float]] = []
    highest = 0.0
    for upper, count in bounds:
        highest = max(highest, count)
        monotonic.append((upper, highest))
    total = monotonic[-1][1]
    if total == 0 or math.isnan(total):
        return math.nan
    rank = q * total
    index = next(i for i, (_, count) in enumerate(monotonic) if count >= rank)
    if index == len(monotonic) - 1:
        return monotonic[-2][0]
    if index == 0 and monotonic[0][0] <= 0:
        return monotonic[0][0]
    start, below = (0.0, 0.0) if index == 0 else monotonic[index - 1]
    end, count = monotonic[index]
    return start + (end - start) * (rank - below) / (count - below)

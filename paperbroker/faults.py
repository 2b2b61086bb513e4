"""Injected faults per route: errors, latency, hangs and "accept, then answer 504"."""

from __future__ import annotations

import fnmatch
import json
import random
from typing import Any
from uuid import uuid4

from pydantic import BaseModel, Field

GATEWAY_TIMEOUT_PAGE = "<html><body><h1>504 Gateway Time-out</h1></body></html>"


class FaultRule(BaseModel):
    """One fault: which requests it hits, how often, and what they get instead."""

    id: str = Field(default_factory=lambda: uuid4().hex)
    method: str = "*"
    path: str = "*"
    probability: float = Field(default=1.0, ge=0.0, le=1.0)
    status: int = 500
    body: dict[str, Any] | list[Any] | str | None = None
    latency_ms: int = Field(default=0, ge=0)
    hang: bool = False
    hang_seconds: float = Field(default=30.0, ge=0.0)
    after: bool = False
    times: int | None = Field(default=None, ge=1)

    def matches(self, method: str, path: str) -> bool:
        """Return True if the rule applies to this request."""
        method_ok = self.method == "*" or self.method.upper() == method.upper()
        return method_ok and fnmatch.fnmatchcase(path, self.path)

    def error_body(self) -> tuple[str, str]:
        """Return (text, content type) of the injected answer."""
        if self.body is None:
            if self.status == 504:
                return GATEWAY_TIMEOUT_PAGE, "text/html"
            return json.dumps({"message": "internal server error"}), "application/json"
        if isinstance(self.body, str):
            return self.body, "text/plain"
        return json.dumps(self.body), "application/json"


class FaultBook:
    """The active fault rules and a seeded coin for their probabilities."""

    def __init__(self, seed: int) -> None:
        self.rules: list[FaultRule] = []
        self._rng = random.Random(seed)

    def add(self, rule: FaultRule) -> FaultRule:
        """Activate a rule."""
        self.rules.append(rule)
        return rule

    def remove(self, rule_id: str) -> bool:
        """Deactivate a rule; return False if it did not exist."""
        before = len(self.rules)
        self.rules = [r for r in self.rules if r.id != rule_id]
        return len(self.rules) != before

    def clear(self) -> None:
        """Deactivate every rule."""
        self.rules.clear()

    def pick(self, method: str, path: str) -> FaultRule | None:
        """Return the first rule that fires for this request (consuming one of its `times`)."""
        for rule in list(self.rules):
            if not rule.matches(method, path):
                continue
            if self._rng.random() >= rule.probability:
                continue
            if rule.times is not None:
                rule.times -= 1
                if rule.times <= 0:
                    self.rules.remove(rule)
            return rule
        return None

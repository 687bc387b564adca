"""Request matching shared by header routes, mirror routes and A/B variants.

Shaped like Gateway API's HTTPRouteMatch: within one match every condition must hold; a list of
matches is satisfied when any one of them is."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from rollwise.spec.common import Spec


class StringMatch(Spec):
    """One condition on a header, cookie or query parameter, by exact value, prefix or regex."""

    exactly_one_of = ("exact", "prefix", "regex")

    name: str = Field(min_length=1)
    exact: str | None = None
    prefix: str | None = None
    regex: str | None = None

    @property
    def kind(self) -> Literal["exact", "prefix", "regex"]:
        if self.exact is not None:
            return "exact"
        return "prefix" if self.prefix is not None else "regex"

    @property
    def value(self) -> str:
        return self.exact if self.exact is not None else (self.prefix if self.prefix is not None else self.regex or "")


class RouteMatch(Spec):
    headers: list[StringMatch] | None = None
    cookies: list[StringMatch] | None = None
    query_params: list[StringMatch] | None = Field(default=None, alias="queryParams")

    def conditions(self) -> list[tuple[Literal["header", "cookie", "query"], StringMatch]]:
        out: list[tuple[Literal["header", "cookie", "query"], StringMatch]] = []
        out += [("header", m) for m in self.headers or []]
        out += [("cookie", m) for m in self.cookies or []]
        out += [("query", m) for m in self.query_params or []]
        return out

"""The cookie patterns Istio and Gateway API match on the Cookie header: what they accept under
RE2 full-match semantics (as Envoy matches), and that reading one back gives the condition."""

from __future__ import annotations

import pytest
import re2

from rollwise.platforms.kubernetes.routers.cookies import cookie_regex, parse_cookie_regex
from rollwise.spec.match import StringMatch


def fullmatch(pattern: str, header: str) -> bool:
    return re2.fullmatch(pattern, header) is not None


CASES = [
    (
        StringMatch(name="beta", exact="yes"),
        ["beta=yes", "a=1; beta=yes", "beta=yes; b=2", "a=1;beta=yes;b=2"],
        ["beta=yesno", "xbeta=yes", "beta=no", "a=beta=yes", "", "beta=ye"],
    ),
    (
        StringMatch(name="v.1", exact="a+b"),
        ["v.1=a+b", "x=1; v.1=a+b"],
        ["vx1=a+b", "v.1=aab", "v.1=a+bb"],
    ),
    (
        StringMatch(name="group", prefix="team-"),
        ["group=team-a", "x=1; group=team-; y=2"],
        ["group=tea", "group=xteam-a", "mygroup=team-a"],
    ),
    (
        StringMatch(name="beta", regex="^(yes|true)$"),
        ["beta=yes", "a=1; beta=true; b=2"],
        ["beta=yess", "beta=maybe", "xbeta=yes"],
    ),
    (
        StringMatch(name="id", regex="[0-9]+"),
        ["id=42", "a=1; id=7"],
        ["id=4a", "id="],
    ),
]


@pytest.mark.parametrize(("cond", "accepted", "refused"), CASES)
def test_cookie_pattern_matches_the_cookie_value_whole(
    cond: StringMatch, accepted: list[str], refused: list[str]
) -> None:
    pattern = cookie_regex(cond)
    re2.compile(pattern)
    assert [h for h in accepted if not fullmatch(pattern, h)] == []
    assert [h for h in refused if fullmatch(pattern, h)] == []


@pytest.mark.parametrize(("cond", "accepted", "refused"), CASES)
def test_cookie_pattern_reads_back(cond: StringMatch, accepted: list[str], refused: list[str]) -> None:
    back = parse_cookie_regex(cookie_regex(cond))
    assert back is not None
    assert (back.name, back.kind) == (cond.name, cond.kind)
    value = cond.value.removeprefix("^").removesuffix("$") if cond.kind == "regex" else cond.value
    assert back.value == value


def test_other_patterns_are_not_read_as_cookies() -> None:
    assert parse_cookie_regex("^beta=yes$") is None
    assert parse_cookie_regex(r"^(?:.*;\s*)?be.ta=yes(?:;.*)?$") is None

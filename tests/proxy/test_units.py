"""The pure parts, without processes: table checks and JSON form, the deck, JSON paths,
comparison and chunked decoding."""

from __future__ import annotations

from collections import Counter

import pytest

from rollwise.platforms.local.proxy.chunked import Dechunker, dechunk
from rollwise.platforms.local.proxy.compare import Capture, differences
from rollwise.platforms.local.proxy.jsonpath import JsonPathError, parse_path, remove_path
from rollwise.platforms.local.proxy.routes import Condition, Match, MatchRoute, Mirror, RouteTable, RouteTableError
from rollwise.platforms.local.proxy.table import Deck, RequestView


def test_table_round_trips_through_json() -> None:
    table = RouteTable(
        upstreams={"s": [("127.0.0.1", 1)], "c": [("127.0.0.1", 2)]},
        weights={"s": 90, "c": 10},
        routes=(MatchRoute("c", (Match(headers=(Condition("X-Canary", "exact", "1"),)),)),),
        mirror=Mirror("c", 5, ignore_paths=("$.t",)),
        sticky_cookie="rw",
    )
    assert table.problems() == []
    assert RouteTable.from_dict(table.to_dict()) == table


def test_table_problems_are_all_listed() -> None:
    table = RouteTable(upstreams={"s": []}, weights={"s": 50, "t": 20})
    problems = table.problems()
    assert any("'s' has weight 50 but no ready upstream" in p for p in problems)
    assert any("'t' has weight 20" in p for p in problems)
    assert any("sum to 100 (got 70)" in p for p in problems)
    with pytest.raises(RouteTableError):
        table.check()
    with pytest.raises(RouteTableError, match="unknown field"):
        RouteTable.from_dict({"upstreams": {}, "weights": {}, "weight": 1})
    with pytest.raises(RouteTableError, match="malformed"):
        RouteTable.from_dict({"weights": {}})


def test_deck_is_exact_per_hundred() -> None:
    deck = Deck(["a"] * 7 + ["b"] * 93)
    for _ in range(30):
        assert Counter(deck.draw() for _ in range(100)) == {"a": 7, "b": 93}


def test_request_view() -> None:
    view = RequestView(
        [(b"Cookie", b"a=1; rw=canary"), (b"X-Multi", b"1"), (b"x-multi", b"2"), (b"cookie", b"b=2")], b"/p?q=1&q=2&e="
    )
    assert view.header("x-multi") == "1, 2"
    assert view.cookie("rw") == "canary" and view.cookie("b") == "2" and view.cookie("zz") is None
    assert view.query("q") == "1" and view.query("e") == ""


def test_json_paths() -> None:
    doc = {"timestamp": 1, "items": [{"id": 1, "v": 2}, {"id": 3}], "a": {"b": [5, 6]}, "k y": 1}
    for path in ("$.timestamp", "$.items[*].id", "$.a.b[0]", "$['k y']", "$.missing.x"):
        remove_path(doc, parse_path(path))
    assert doc == {"items": [{"v": 2}, {}], "a": {"b": [None, 6]}}
    for bad in ("items", "$", "$.a[", "$..x"):
        with pytest.raises(JsonPathError):
            parse_path(bad)


def _capture(status: int, head: bytes, body: bytes) -> Capture:
    c = Capture(1 << 20)
    c.head(status, b"HTTP/1.1 %d X\r\n" % status + head, (b"content-type",))
    c.add(body)
    return c


def test_differences_by_kind() -> None:
    json_head = b"Content-Type: application/json\r\n"
    a = _capture(200, json_head, b'{"t": 1, "x": [1, 2]}')
    b = _capture(200, json_head, b'{"x": [1, 2], "t": 2}')
    assert differences(a, b, (b"content-type",), [parse_path("$.t")]) == []
    assert differences(a, b, (b"content-type",), []) == ["body"]
    c = _capture(500, b"Content-Type: text/plain\r\n", b"oops")
    assert differences(a, c, (b"content-type",), []) == ["status", "header:content-type", "body"]
    chunked = _capture(
        200, json_head + b"Transfer-Encoding: chunked\r\n", b'5\r\n{"t":\r\n10\r\n 9, "x": [1, 2]}\r\n0\r\n\r\n'
    )
    assert differences(a, chunked, (b"content-type",), [parse_path("$.t")]) == []


def test_dechunker_incremental() -> None:
    raw = b"4;ext=1\r\nWiki\r\n6\r\npedia \r\nE\r\nin \r\n\r\nchunks.\r\n0\r\nTrailer: x\r\n\r\n"
    assert dechunk(raw) == b"Wikipedia in \r\n\r\nchunks."
    d = Dechunker()
    assert b"".join(d.feed(raw[i : i + 3]) for i in range(0, len(raw), 3)) == b"Wikipedia in \r\n\r\nchunks."
    assert d.done

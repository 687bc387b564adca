"""The compiled route table: what the hot path consults, built once per swap.

A request is routed by (1) the first match route whose matches hold, else (2) the sticky cookie
when it names a revision that still has weight, else (3) the weight deck. The deck holds 100 cards,
one per percent, and is reshuffled each time it runs out: every 100 requests follow the weights
exactly, per request rather than per connection (per-connection balancing gives wrong shares under
keep-alive), and the order cannot be predicted or fall into step with a client's own pattern."""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Generic, TypeVar
from urllib.parse import parse_qsl

from rollwise.platforms.local.proxy.jsonpath import Segment, parse_path
from rollwise.platforms.local.proxy.routes import Address, Condition, Match, RouteTable
from rollwise.platforms.local.proxy.stats import MirrorStats, RevisionStats
from rollwise.platforms.local.proxy.upstream import Pool

T = TypeVar("T")
# The revision named in 503s when the table routes to nothing (see compile_table).
NOTHING = "(none)"
Headers = list[tuple[bytes, bytes]]

# The request header lines the client side acts on itself (all others are forwarded as received),
# lower-cased. Content-Length and Transfer-Encoding are not among them: both are forwarded as
# received (a chunked body is re-framed chunk by chunk, which keeps its transfer codings true).
LINE_NAMES = frozenset(
    {b"expect", b"x-forwarded-for", b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer", b"upgrade"}
)


def head_scan(route_names: Iterable[bytes] = ()) -> re.Pattern[bytes]:
    """A search of the lower-cased request head for lines named in LINE_NAMES or `route_names`,
    or for the blank line that ends the head, whichever comes first. One search costs about a
    nanosecond per byte of head; a Python call per header line, or capture groups in the pattern,
    cost several times that."""
    names = sorted(LINE_NAMES | set(route_names))
    return re.compile(b"\\r\\n(?:\\r\\n|(?:" + b"|".join([re.escape(n) for n in names]) + b"):)")


DEFAULT_SCAN = head_scan()


class Deck(Generic[T]):
    """`ROUNDS` independently shuffled rounds of the 100 cards, drawn in a cycle: every 100
    requests follow the weights exactly, the order repeats only every 10,000, and a draw costs an
    index step (shuffling as the deck runs out cost more than the rest of routing)."""

    __slots__ = ("cards", "i", "n")
    ROUNDS = 100

    def __init__(self, cards: list[T]) -> None:
        deck: list[T] = []
        for _ in range(self.ROUNDS if cards else 0):
            one = list(cards)
            random.shuffle(one)
            deck += one
        self.cards = deck
        self.n = len(deck)
        # Start at a random round (not mid-round), so any 100 consecutive draws from here are exact.
        self.i = random.randrange(self.ROUNDS) * len(cards) if deck else 0

    def draw(self) -> T:
        i = self.i
        if i >= self.n:
            i = 0
        self.i = i + 1
        return self.cards[i]


class Backend:
    """One revision as the hot path sees it: its replicas' pools and its counters."""

    __slots__ = ("name", "pools", "rr", "set_cookie", "stale", "stats")

    def __init__(self, name: str, pools: list[Pool], stats: RevisionStats) -> None:
        self.name = name
        self.pools = pools
        self.rr = 0
        self.stats = stats
        self.set_cookie = b""
        # Set when its table is swapped out: a request routed here but not yet sent (pipelined
        # behind another) is routed again on the table in force (CompiledTable.current).
        self.stale = False

    def pick(self, now: float, exclude: Pool | None = None) -> Pool | None:
        """Round robin over replicas, skipping ones that recently refused a connection while others
        remain; `exclude` is the replica a retry must avoid."""
        pools = self.pools
        rr = self.rr
        if rr < len(pools):
            pool = pools[rr]
            if pool.down_until <= now and pool is not exclude:
                self.rr = rr + 1 if rr + 1 < len(pools) else 0
                return pool
        return self._pick_slow(now, exclude)

    def _pick_slow(self, now: float, exclude: Pool | None) -> Pool | None:
        pools = self.pools
        n = len(pools)
        for k in range(n):
            pool = pools[(self.rr + k) % n]
            if pool.down_until <= now and pool is not exclude:
                self.rr = (self.rr + k + 1) % n
                return pool
        if exclude is None and n:
            # Every replica was ejected a moment ago; trying one beats refusing outright.
            self.rr = (self.rr + 1) % n
            return pools[self.rr]
        return None


class RequestView:
    """Lazy, read-only views of a request's headers, cookies and query, built only when a table
    has match rules or a sticky cookie, so the plain weighted path builds no dicts."""

    __slots__ = ("_cookies", "_headers", "_query", "_raw", "_url")

    def __init__(self, raw: Headers, url: bytes) -> None:
        self._raw = raw
        self._url = url
        self._headers: dict[str, str | None] | None = None
        self._cookies: dict[str, str] | None = None
        self._query: dict[str, str] | None = None

    def header(self, name: str) -> str | None:
        """Scans the few headers of a request for one name: cheaper than building a dict of all.
        Repeated headers combine with ", " (RFC 9110 5.3); cookies with "; "."""
        headers = self._headers
        if headers is None:
            headers = self._headers = {}
        elif name in headers:
            return headers[name]
        wanted = name.encode("latin-1")
        found: bytes | None = None
        for k, v in self._raw:
            if len(k) == len(wanted) and k.lower() == wanted:
                found = v if found is None else found + (b"; " if wanted == b"cookie" else b", ") + v
        value = None if found is None else found.decode("latin-1")
        headers[name] = value
        return value

    def cookie(self, name: str) -> str | None:
        if self._cookies is None:
            self._cookies = parse_cookies(self.header("cookie") or "")
        return self._cookies.get(name)

    def query(self, name: str) -> str | None:
        if self._query is None:
            _, _, qs = self._url.decode("latin-1").partition("?")
            qs = qs.partition("#")[0]
            query: dict[str, str] = {}
            for key, value in parse_qsl(qs, keep_blank_values=True):
                query.setdefault(key, value)  # the first value counts, as in Gateway API
            self._query = query
        return self._query.get(name)


def parse_cookies(header: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in header.split(";"):
        name, sep, value = part.strip().partition("=")
        if sep and name not in out:
            out[name] = value.strip('"')
    return out


def _compile_condition(cond: Condition, source: str) -> Callable[[RequestView], bool]:
    name = cond.name.lower() if source == "header" else cond.name

    def getter(view: RequestView) -> str | None:
        if source == "header":
            return view.header(name)
        if source == "cookie":
            return view.cookie(name)
        return view.query(name)

    value = cond.value
    if cond.kind == "exact":
        return lambda view: getter(view) == value
    if cond.kind == "prefix":
        return lambda view: (v := getter(view)) is not None and v.startswith(value)
    pattern = re.compile(value)
    return lambda view: (v := getter(view)) is not None and pattern.search(v) is not None


class CompiledMatch:
    __slots__ = ("tests",)

    def __init__(self, match: Match) -> None:
        self.tests = [_compile_condition(c, "header") for c in match.headers]
        self.tests += [_compile_condition(c, "cookie") for c in match.cookies]
        self.tests += [_compile_condition(c, "query") for c in match.query]

    def __call__(self, view: RequestView) -> bool:
        # Plain loops: all()/any() over a generator cost a frame each, on every matched request.
        for test in self.tests:  # noqa: SIM110
            if not test(view):
                return False
        return True


def any_match(matches: Sequence[CompiledMatch], view: RequestView) -> bool:
    for match in matches:  # noqa: SIM110
        if match(view):
            return True
    return False


class CompiledMirror:
    __slots__ = ("backend", "compare_headers", "deck", "ignore", "matches", "stats")

    def __init__(self, backend: Backend, percent: int, matches: list[CompiledMatch], stats: MirrorStats) -> None:
        self.backend = backend
        self.deck = Deck([True] * percent + [False] * (100 - percent))
        self.matches = matches
        self.stats = stats
        self.compare_headers: tuple[bytes, ...] = ()
        self.ignore: list[tuple[Segment, ...]] = []

    def wants(self, view: RequestView | None) -> bool:
        """Draw from the deck only for requests the mirror applies to, so the percent is a share
        of those requests."""
        if self.matches and (view is None or not any_match(self.matches, view)):
            return False
        return self.deck.draw()


class CompiledTable:
    __slots__ = (
        "backends",
        "deck",
        "generation",
        "head_scan",
        "header_names",
        "inspects",
        "mirror",
        "plain",
        "routes",
        "source",
        "sticky",
        "sticky_backends",
    )

    def __init__(self, source: RouteTable, generation: int) -> None:
        self.source = source
        self.generation = generation
        self.backends: dict[str, Backend] = {}
        self.deck: Deck[Backend] = Deck([])
        self.routes: list[tuple[list[CompiledMatch], Backend]] = []
        self.mirror: CompiledMirror | None = None
        self.sticky: str | None = None
        self.sticky_backends: dict[str, Backend] = {}
        # True when routing needs to look at the request beyond its method and URL.
        self.inspects = False
        # When every condition is on a header (the usual canary override) and there is no sticky
        # cookie: the lower-cased names they test. A request carrying none of them cannot match,
        # which the hot path learns without building a view.
        self.header_names: frozenset[bytes] | None = None
        # The search the client side runs over each request head (see head_scan): it also finds
        # the header_names above.
        self.head_scan = DEFAULT_SCAN
        # No mirror, and a request whose head has no line head_scan finds is routed by the deck:
        # the client side's usual path applies (see ClientConnection.on_headers_complete).
        self.plain = True

    def retire(self) -> None:
        """This table is no longer in force: its backends say so to requests still holding them."""
        for backend in self.backends.values():
            backend.stale = True
        if self.deck.cards:
            # Every card is one of the backends above, or the one without replicas when nothing can serve.
            self.deck.cards[0].stale = True

    def current(self, backend: Backend) -> Backend:
        """Where a request routed to `backend` under an earlier table goes now: the same revision
        if it still has replicas here, else a draw by this table's weights (the rules that chose
        that revision may be gone with it)."""
        fresh = self.backends.get(backend.name)
        return fresh if fresh is not None and fresh.pools else self.deck.draw()

    def choose(self, headers: Headers, url: bytes) -> tuple[Backend, RequestView | None, bool]:
        """(revision, the view built on the way if any, whether to set the sticky cookie)."""
        if not self.inspects:
            return self.deck.draw(), None, False
        names = self.header_names
        if names is not None:
            for k, _ in headers:
                if k.lower() in names:
                    break
            else:
                return self.deck.draw(), None, False
        view = RequestView(headers, url)
        for matches, backend in self.routes:
            if any_match(matches, view):
                return backend, view, False
        if self.sticky is not None:
            chosen = view.cookie(self.sticky)
            if chosen is not None:
                sticky = self.sticky_backends.get(chosen)
                if sticky is not None:
                    return sticky, view, False
            return self.deck.draw(), view, True
        return self.deck.draw(), view, False


def compile_table(
    table: RouteTable,
    generation: int,
    pool_for: Callable[[Address], Pool],
    revision_stats: Callable[[str], RevisionStats],
    mirror_stats: Callable[[str], MirrorStats],
) -> CompiledTable:
    """Compile a table already checked with `RouteTable.problems()`."""
    out = CompiledTable(table, generation)
    for rev, addrs in table.upstreams.items():
        out.backends[rev] = Backend(rev, [pool_for(a) for a in addrs], revision_stats(rev))
    cards: list[Backend] = []
    for rev, weight in table.weights.items():
        if weight > 0:
            cards += [out.backends[rev]] * weight
    if not cards:
        # Nothing can serve: every request draws a revision without replicas, which the hot path
        # answers with a 503 naming it. Its counters are not kept: no revision served anything.
        cards = [Backend(NOTHING, [], RevisionStats())] * 100
    out.deck = Deck(cards)
    out.routes = [([CompiledMatch(m) for m in r.matches], out.backends[r.revision]) for r in table.routes]
    if table.sticky_cookie is not None:
        out.sticky = table.sticky_cookie
        for rev, weight in table.weights.items():
            if weight > 0:
                backend = out.backends[rev]
                backend.set_cookie = (
                    f"set-cookie: {table.sticky_cookie}={rev}; Path=/; HttpOnly; SameSite=Lax\r\n".encode("latin-1")
                )
                out.sticky_backends[rev] = backend
    if table.mirror is not None and table.mirror.percent > 0:
        m = table.mirror
        mirror = CompiledMirror(
            out.backends[m.revision], m.percent, [CompiledMatch(x) for x in m.matches], mirror_stats(m.revision)
        )
        mirror.compare_headers = tuple(h.lower().encode("latin-1") for h in m.compare_headers)
        mirror.ignore = [parse_path(p) for p in m.ignore_paths]
        out.mirror = mirror
    out.inspects = bool(out.routes) or out.sticky is not None or bool(out.mirror and out.mirror.matches)
    all_matches = [m for r in table.routes for m in r.matches] + list(table.mirror.matches if table.mirror else ())
    if out.sticky is None and all(not (m.cookies or m.query) for m in all_matches):
        names = frozenset(c.name.lower().encode("latin-1") for m in all_matches for c in m.headers)
        if not names & LINE_NAMES:
            # (A rule on one of the lines the head builder acts on itself always builds a view.)
            out.header_names = names
            out.head_scan = head_scan(names)
    out.plain = out.mirror is None and not (out.inspects and out.header_names is None)
    return out

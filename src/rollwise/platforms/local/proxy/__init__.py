"""The local platform's data plane: a per-request reverse proxy with weights, matches, sticky
cookies, mirroring with response comparison, and an atomic route-table swap."""

from rollwise.platforms.local.proxy import native

# Before any other module of the package is imported: the compiled hot path, if it was built from
# these sources (see native.py).
BUILD, BUILD_REASON = native.activate(__path__)

from rollwise.platforms.local.proxy.routes import Condition, Match, MatchRoute, Mirror, RouteTable, RouteTableError  # noqa: E402
from rollwise.platforms.local.proxy.server import ProxyServer  # noqa: E402
from rollwise.platforms.local.proxy.settings import ProxySettings  # noqa: E402

__all__ = [
    "BUILD",
    "BUILD_REASON",
    "Condition",
    "Match",
    "MatchRoute",
    "Mirror",
    "ProxyServer",
    "ProxySettings",
    "RouteTable",
    "RouteTableError",
]

"""The local platform's data plane: a per-request reverse proxy with weights, matches, sticky
cookies, mirroring with response comparison, and an atomic route-table swap."""

from rollwise.platforms.local.proxy.routes import Condition, Match, MatchRoute, Mirror, RouteTable, RouteTableError
from rollwise.platforms.local.proxy.server import ProxyServer
from rollwise.platforms.local.proxy.settings import ProxySettings

__all__ = [
    "Condition",
    "Match",
    "MatchRoute",
    "Mirror",
    "ProxyServer",
    "ProxySettings",
    "RouteTable",
    "RouteTableError",
]

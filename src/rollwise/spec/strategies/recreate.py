from __future__ import annotations

from rollwise.spec.common import Spec


class RecreateStrategy(Spec):
    """Stop every old replica, wait until all are gone, then start the new revision. Accepts a
    window of downtime in exchange for never running two versions at once (schema migrations,
    singletons, licences bound to one instance)."""

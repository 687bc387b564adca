"""An emulated Kubernetes API server for tests, built on kmock's emulator and extended with the API
semantics Rollwise's controller relies on. See docs/testing-kubernetes.md for what it does and does
not emulate. Test-only: it needs the `dev` extra and Rollwise never imports it at run time."""

from rollwise.testing.kubeapi.crds import load_crd_file, rollwise_crds, shared_crd_files, standard_crds
from rollwise.testing.kubeapi.errors import ApiError
from rollwise.testing.kubeapi.server import ApiServer, AuditRecord, serve
from rollwise.testing.kubeapi.store import Store, Write

__all__ = [
    "ApiError",
    "ApiServer",
    "AuditRecord",
    "Store",
    "Write",
    "load_crd_file",
    "rollwise_crds",
    "serve",
    "shared_crd_files",
    "standard_crds",
]

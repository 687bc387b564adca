"""Build the proxy's compiled hot path, or say which build the proxy would run (see
src/rollwise/platforms/local/proxy/native.py). `make native` runs it."""

import sys

from rollwise.platforms.local.proxy import native

sys.exit(native.main(sys.argv))

#!/usr/bin/env bash
# Our proxy against Debian's nginx, same upstreams, one core each, loopback only, bounded time.
# Usage: bench/proxy/run.sh [--duration SECONDS] [--connections 50,200] [--json OUT]
# Needs nginx and wrk (installed with apt-get when absent) and the project's .venv.
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! command -v nginx >/dev/null || ! command -v wrk >/dev/null || ! command -v hey >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx wrk hey >/dev/null
fi
PY=.venv/bin/python
[ -x "$PY" ] || PY=python3
exec "$PY" bench/proxy/bench.py "$@"

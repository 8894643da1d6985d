#!/usr/bin/env bash
# Make bench/.venv-peers: the peer queues and the profilers, kept out of pizzaq's .venv.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-$(command -v python3.12 || command -v python3)}
if [ ! -x .venv-peers/bin/python ]; then
    "$PYTHON" -m venv .venv-peers
    .venv-peers/bin/pip install --quiet --upgrade pip
fi
.venv-peers/bin/pip install --quiet -r requirements-peers.txt

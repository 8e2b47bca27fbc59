#!/usr/bin/env bash
# The long soak of `jam mirror` (not run by CI): a steady stream of new builds for SECONDS (default 600),
# with SeaweedFS as the store, sampling the worker's memory, open files and threads every second.
#   bash tests/soak.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
export JAM_TEST_SOAK_SECS="${1:-600}"
exec bash tests/run.sh cargo test --release --test integration soak -- --nocapture

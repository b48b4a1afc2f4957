#!/usr/bin/env bash
# Issue 14's latency targets, rerunnable in a quiet window:
#   1. idle:   5 fresh demo sweeps; batch-1 p50 must fall with the ratio in each form, 5 of 5.
#   2. loaded: 20 clients hammer the dashboard while the demo sweep is re-measured; every point
#              must be flagged unreliable or within 15% of its idle figure.
# Every run prints `uptime`. Output is also written to latency_check-<UTC time>.log.
#   scripts/latency_check.sh [idle|loaded|both] [extra latencycheck flags, e.g. -runs 5 -clients 20]
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-both}
[ $# -gt 0 ] && shift
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/rmprune" .
log="latency_check-$(date -u +%Y%m%dT%H%M%SZ).log"
echo "rmprune $(git describe --always --dirty 2>/dev/null || echo unknown), $(nproc) cores, $(date -u)" | tee "$log"
go run ./scripts/latencycheck -bin "$tmp/rmprune" -mode "$mode" "$@" 2>&1 | tee -a "$log"

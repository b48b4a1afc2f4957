#!/usr/bin/env bash
# The whole test suite. Installs what the tests need when it is missing
# (Debian packages, the ONNX Runtime library from npm), then runs gofmt,
# go vet, the generated-code check, go test (default, purego and ort builds)
# and a short fuzzing pass over every parser of untrusted files.
#
#   ./scripts/test.sh            # everything, as CI runs it
#   FUZZTIME=60s ./scripts/test.sh   # longer fuzzing
#   SKIP_INSTALL=1 ./scripts/test.sh # do not apt/npm install anything
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZTIME=${FUZZTIME:-10s}
export GOFLAGS=${GOFLAGS:-}

step() { printf '\n==> %s\n' "$*"; }

# --- set-up -----------------------------------------------------------------
if [ -z "${SKIP_INSTALL:-}" ]; then
  need=()
  [ -d /usr/share/datasets/fashion-mnist ] || need+=(dataset-fashion-mnist)
  /usr/bin/python3 -c 'import onnx, numpy' 2>/dev/null || need+=(python3-onnx python3-numpy)
  command -v chromium >/dev/null || need+=(chromium)
  if [ ${#need[@]} -gt 0 ]; then
    step "apt-get install ${need[*]}"
    if [ "$(id -u)" = 0 ]; then
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null || echo "warning: apt-get install failed; dependent tests will skip"
    else
      echo "warning: not root; cannot install ${need[*]}; dependent tests will skip"
    fi
  fi
fi
if [ -x scripts/ort.sh ] && [ -z "${SKIP_INSTALL:-}" ]; then
  step "ONNX Runtime library"
  ORT_LIB=$(scripts/ort.sh) && export ORT_LIB && echo "$ORT_LIB" || echo "warning: could not fetch ONNX Runtime; ort tests will skip"
fi

# --- static checks ----------------------------------------------------------
step "gofmt"
bad=$(gofmt -l $(git ls-files '*.go' | grep -v '_templ.go$') 2>/dev/null || true)
if [ -n "$bad" ]; then echo "gofmt would change:"; echo "$bad"; exit 1; fi

step "go vet"
go vet ./...
go vet -tags purego ./...
go vet -tags ort ./...

step "generated code is up to date"
go generate ./kernels/...
go tool templ generate >/dev/null
if ! git diff --exit-code --stat -- 'kernels/*.s' 'kernels/*.go' '*_templ.go'; then
  echo "regenerating changed committed files: run 'go generate ./kernels' / 'go tool templ generate' and commit"; exit 1
fi
if [ -n "$(git status --porcelain -- '*_templ.go' 'kernels/*.s')" ]; then
  echo "generated files are not committed:"; git status --porcelain -- '*_templ.go' 'kernels/*.s'; exit 1
fi

# --- tests ------------------------------------------------------------------
step "go test ./..."
go test -count=1 ./...

# The purego build changes only the kernels' dispatch: rerun what executes them.
step "go test -tags purego (pure-Go kernels)"
go test -count=1 -tags purego ./kernels/... ./engine/... ./bench/...

# ONNX Runtime tests live behind the ort tag (cgo): run the packages that have them.
ort_pkgs=$(grep -rlE '^//go:build.*\bort\b' --include='*.go' . | xargs -r -n1 dirname | sort -u)
step "go test -tags ort (ONNX Runtime comparisons): $(echo $ort_pkgs)"
[ -n "$ort_pkgs" ] && go test -count=1 -tags ort $ort_pkgs

step "fuzz (${FUZZTIME} each)"
for target in $(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n1 dirname | sort -u); do
  for fz in $(grep -h '^func Fuzz' "$target"/*_test.go | sed 's/func \(Fuzz[A-Za-z0-9_]*\).*/\1/'); do
    echo "$target $fz"
    go test -run="^$" -fuzz="^${fz}\$" -fuzztime="$FUZZTIME" -fuzzminimizetime=50x "$target" >/dev/null
  done
done

echo
echo "all checks passed"

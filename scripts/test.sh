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
if [ -d kernels/_asm ]; then (cd kernels/_asm && go run . -out ..) >/dev/null; fi
if ls web/*.templ >/dev/null 2>&1; then go tool templ generate >/dev/null; fi
if ! git diff --exit-code --stat -- '*.s' '*_amd64.go' '*_templ.go'; then
  echo "regenerating changed committed files: run go generate / templ generate and commit"; exit 1
fi

# --- tests ------------------------------------------------------------------
step "go test ./..."
go test -count=1 ./...

step "go test -tags purego ./... (pure-Go kernels)"
go test -count=1 -tags purego ./...

step "go test -tags ort (ONNX Runtime comparisons)"
go test -count=1 -tags ort ./...

step "fuzz (${FUZZTIME} each)"
for target in $(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n1 dirname | sort -u); do
  for fz in $(grep -h '^func Fuzz' "$target"/*_test.go | sed 's/func \(Fuzz[A-Za-z0-9_]*\).*/\1/'); do
    echo "$target $fz"
    go test -run="^$" -fuzz="^${fz}\$" -fuzztime="$FUZZTIME" -fuzzminimizetime=50x "$target" >/dev/null
  done
done

echo
echo "all checks passed"

#!/usr/bin/env bash
# The whole test suite. Installs what the tests need when it is missing
# (Debian packages, the ONNX Runtime library from npm), then runs gofmt,
# go vet, the generated-code check, go test (default, purego and ort builds)
# and a short fuzzing pass over every parser of untrusted files.
#
#   ./scripts/test.sh            # everything, as CI runs it
#   FUZZSCALE=6 ./scripts/test.sh    # fuzz 6× longer (execution counts scaled)
#   FUZZTIME=60s ./scripts/test.sh   # time-based fuzzing instead of counts
#   SKIP_INSTALL=1 ./scripts/test.sh # do not apt/npm install anything
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZTIME=${FUZZTIME:-}
FUZZSCALE=${FUZZSCALE:-1}
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

# Fuzzing runs a fixed number of executions per target (-fuzztime=Nx), not a
# duration: a time-based run can fail with "context deadline exceeded" and no
# crasher (a Go fuzzing race), and counts make CI's work the same on every
# machine. Each count is ~10 s of that target on the 2-core CI machine under
# load (measured 2026-12-04, load average 12: execs per 10 s in the comment).
fuzz_execs() {
  case "$1 $2" in
    "./nn/onnx FuzzDecode")       echo 500000 ;;  # 532k
    "./nn/safetensors FuzzRead")  echo 1000000 ;; # 998k
    "./nn/pth FuzzRead")          echo 150000 ;;  # 153k
    "./nn/npy FuzzRead")          echo 1000000 ;; # 1.06M
    "./pruning FuzzPrune")        echo 1500 ;;    # 1.3k
    "./dataset FuzzParseIDX")     echo 500000 ;;  # 490k
    "./nn FuzzFromStateDict")     echo 25000 ;;   # 28k (load 11)
    *)                            echo 100000 ;;
  esac
}
if [ -n "$FUZZTIME" ]; then step "fuzz (${FUZZTIME} each)"; else step "fuzz (fixed execution counts ×${FUZZSCALE})"; fi
for target in $(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n1 dirname | sort -u); do
  for fz in $(grep -h '^func Fuzz' "$target"/*_test.go | sed 's/func \(Fuzz[A-Za-z0-9_]*\).*/\1/'); do
    ft=$FUZZTIME
    [ -n "$ft" ] || ft="$(( $(fuzz_execs "$target" "$fz") * FUZZSCALE ))x"
    echo "$target $fz ($ft)"
    log=$(mktemp)
    for attempt in 1 2; do
      if go test -run="^$" -fuzz="^${fz}\$" -fuzztime="$ft" -fuzzminimizetime=50x "$target" >"$log" 2>&1; then
        break
      fi
      # Show why, and any failing input, so a CI failure can be reproduced.
      grep -v '^fuzz: elapsed' "$log" | tail -40
      new=$(git ls-files --others --exclude-standard "$target/testdata/fuzz")
      for f in $new; do
        echo "--- $f"; head -c 4000 "$f"; echo
      done
      # A failing input is a bug: stop. Without one the fuzzing machinery
      # itself failed (a known Go race: "context deadline exceeded"); run
      # the target once more before calling it a failure.
      if [ -n "$new" ] || [ "$attempt" = 2 ]; then
        rm -f "$log"
        exit 1
      fi
      echo "$target $fz: no failing input was written; running it once more"
    done
    rm -f "$log"
  done
done

echo
echo "all checks passed"

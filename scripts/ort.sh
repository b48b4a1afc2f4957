#!/bin/sh
# ort.sh fetches the ONNX Runtime 1.30 CPU library (libonnxruntime.so.1 from the
# npm package onnxruntime-node) into a cache folder when it is missing, and
# prints the library's path. Idempotent: a second run only prints the path.
#
#   scripts/ort.sh            # cache in $REPO/.cache/ort/
#   ORT_CACHE=DIR scripts/ort.sh
#
# Use it as:  ORT_LIB=$(scripts/ort.sh) go test -tags ort ./bench/ort/ ./nn/onnx/
# (the tagged tests also find the library in the default cache without ORT_LIB).
set -eu

version=1.30.0
repo=$(CDPATH= cd -- "$(dirname -- "$0")/.." && pwd)
cache=${ORT_CACHE:-$repo/.cache/ort}
dir=$cache/onnxruntime-node-$version
lib=$dir/libonnxruntime.so.1

if [ -s "$lib" ]; then
	echo "$lib"
	exit 0
fi

case $(uname -s)/$(uname -m) in
Linux/x86_64) arch=x64 ;;
Linux/aarch64) arch=arm64 ;;
*)
	echo "ort.sh: no onnxruntime-node build for $(uname -s)/$(uname -m)" >&2
	exit 1
	;;
esac

command -v npm >/dev/null || {
	echo "ort.sh: npm not found (needed for: npm pack onnxruntime-node@$version)" >&2
	exit 1
}

mkdir -p "$cache"
tmp=$(mktemp -d "$cache/.fetch.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM

# npm pack only downloads the tarball: no install scripts (the CUDA step of a
# plain npm install fails here).
(cd "$tmp" && npm pack --silent "onnxruntime-node@$version" >/dev/null)
tgz=$(ls "$tmp"/onnxruntime-node-*.tgz)
member=package/bin/napi-v6/linux/$arch/libonnxruntime.so.1
tar -xzf "$tgz" -C "$tmp" "$member" || {
	echo "ort.sh: $member not in $(basename "$tgz")" >&2
	exit 1
}

mkdir -p "$tmp/out"
mv "$tmp/$member" "$tmp/out/libonnxruntime.so.1"
rm -rf "$dir"
mv "$tmp/out" "$dir" # atomic: a half-fetched library never appears at $lib
echo "$lib"

#!/bin/sh
# Training throughput, rmprune (Go) against PyTorch 1.13 CPU, side by side in
# one run: CIFAR-style ResNets (3 stages, base width 16), batch 128, 2
# threads, SGD momentum 0.9 + weight decay, random data:
#   resnet20  ResNet-20, 1x28x28 inputs (MNIST-sized)
#   resnet56  ResNet-56, 3x32x32 inputs (CIFAR-sized)
# A step is forward + backward + update with the batch prepared ahead;
# images/s = batch / median step time after 3 warm-up steps (DESIGN "Units
# and words").
#
#   scripts/bench_train.sh [ROUNDS]     (default 3; each round runs rmprune then PyTorch for every case)
#   CASES="resnet20 resnet56"           (default both)
#   THREADS=1 scripts/bench_train.sh    (single-threaded comparison; default 2)
#   STEPS=N                             (timed steps per measurement; default 10)
#
# The machine may be shared: the rounds interleave the two sides, the load
# is printed with every measurement, and the summary gives per side the
# median over rounds with the spread (min-max) and the ratio of the medians.
# Needs /usr/bin/python3 with torch (Debian python3-torch).
set -eu
cd "$(dirname "$0")/.."
rounds=${1:-3}
steps=${STEPS:-10}
threads=${THREADS:-2}
cases=${CASES:-resnet20 resnet56}
case $threads in
1) suffix=-1thread ;;
2) suffix= ;;
*) echo "THREADS must be 1 or 2" >&2; exit 2 ;;
esac
echo "date:    $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "cpu:     $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//') ($(nproc) cores)"
echo "go:      $(go version | cut -d' ' -f3), threads $threads, batch 128, cases: $cases"
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
go test -c -o "$bin/train.test" ./train
res=$bin/results
: >"$res"
i=1
while [ "$i" -le "$rounds" ]; do
	for c in $cases; do
		case $c in
		resnet20) depth=20 shape=1x28x28 ;;
		resnet56) depth=56 shape=3x32x32 ;;
		*) echo "unknown case $c" >&2; exit 2 ;;
		esac
		load=$(cut -d' ' -f1 /proc/loadavg)
		go_ips=$(cd train && "$bin/train.test" -test.run '^$' -test.bench "^BenchmarkTrainStep\$/^$c$suffix\$" -test.benchtime "${steps}x" |
			awk '/images\/s/ { for (i = 1; i < NF; i++) if ($(i+1) == "images/s") print $i }')
		pt_json=$(/usr/bin/python3 scripts/bench_train.py --batch 128 --threads "$threads" --steps "$steps" --depth "$depth" --shape "$shape")
		pt_ips=$(echo "$pt_json" | /usr/bin/python3 -c 'import json,sys; print("%.1f" % json.load(sys.stdin)["images_per_s"])')
		echo "round $i $c: rmprune $go_ips images/s, pytorch $pt_ips images/s, ratio $(echo "$go_ips $pt_ips" | awk '{ printf "%.2f", $1 / $2 }'), load $load"
		echo "$c go $go_ips" >>"$res"
		echo "$c pt $pt_ips" >>"$res"
	done
	i=$((i + 1))
done
echo "load:    $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min) at the end"
for c in $cases; do
	for side in go pt; do
		awk -v c="$c" -v s="$side" '$1 == c && $2 == s { print $3 }' "$res" | sort -g >"$bin/$side"
	done
	med() { awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR+1)/2]; else print (v[NR/2] + v[NR/2+1]) / 2 }' "$1"; }
	go_med=$(med "$bin/go")
	pt_med=$(med "$bin/pt")
	echo "$c: rmprune median $go_med images/s ($(head -1 "$bin/go")-$(tail -1 "$bin/go")), pytorch median $pt_med ($(head -1 "$bin/pt")-$(tail -1 "$bin/pt")), ratio $(echo "$go_med $pt_med" | awk '{ printf "%.2f", $1 / $2 }') (target >= 1.0)"
done

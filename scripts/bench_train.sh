#!/bin/sh
# Training throughput, rmprune (Go) against PyTorch 1.13 CPU, side by side in
# one run: ResNet-20 (CIFAR layout, base width 16), 1x28x28 inputs, batch 128,
# 2 threads, SGD momentum 0.9 + weight decay. A step is forward + backward +
# update with the batch prepared ahead; images/s = batch / median step time
# after 3 warm-up steps (DESIGN "Units and words").
#
#   scripts/bench_train.sh [ROUNDS]     (default 2; the rounds alternate Go and PyTorch)
#   THREADS=1 scripts/bench_train.sh    (single-threaded comparison; default 2)
#   STEPS=N                             (timed steps per measurement; default 10)
#
# On a loaded machine PyTorch's OpenMP threads suffer far more than Go's
# workers from oversubscription: compare on an idle machine, and check the
# load line printed below.
# Prints the machine, each measurement and the ratio Go/PyTorch of the best
# round of each. Needs /usr/bin/python3 with torch (Debian python3-torch).
set -eu
cd "$(dirname "$0")/.."
rounds=${1:-2}
steps=${STEPS:-10}
threads=${THREADS:-2}
case $threads in
1) gobench='^BenchmarkTrainStep$/^resnet20-1thread$' ;;
2) gobench='^BenchmarkTrainStep$/^resnet20$' ;;
*) echo "THREADS must be 1 or 2" >&2; exit 2 ;;
esac
echo "date:    $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "cpu:     $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//') ($(nproc) cores)"
echo "load:    $(cut -d' ' -f1-3 /proc/loadavg)"
echo "go:      $(go version | cut -d' ' -f3), threads $threads, batch 128, ResNet-20 1x28x28"
best_go=0
best_pt=0
i=1
while [ "$i" -le "$rounds" ]; do
	go_ips=$(go test ./train -run '^$' -bench "$gobench" -benchtime "${steps}x" -count 1 |
		awk '/images\/s/ { for (i = 1; i < NF; i++) if ($(i+1) == "images/s") print $i }')
	pt_json=$(/usr/bin/python3 scripts/bench_train.py --batch 128 --threads "$threads" --steps "$steps")
	pt_ips=$(echo "$pt_json" | /usr/bin/python3 -c 'import json,sys; print("%.1f" % json.load(sys.stdin)["images_per_s"])')
	echo "round $i: rmprune ${go_ips} images/s, pytorch ${pt_ips} images/s ($pt_json)"
	best_go=$(echo "$best_go $go_ips" | awk '{ print ($2 > $1) ? $2 : $1 }')
	best_pt=$(echo "$best_pt $pt_ips" | awk '{ print ($2 > $1) ? $2 : $1 }')
	i=$((i + 1))
done
echo "best:    rmprune ${best_go} images/s, pytorch ${best_pt} images/s"
echo "ratio:   $(echo "$best_go $best_pt" | awk '{ printf "%.2f", $1 / $2 }') (rmprune / pytorch; target >= 1.0)"

#!/usr/bin/env bash
# Issue 13's target run: a 16-point sweep (8 ratios × 2 forms, plus the two
# unpruned references) on one coordinator (serve --cluster, embedded NATS)
# and three worker processes, a random worker SIGKILLed (and restarted under
# a new name) every 20 s and one paused (SIGSTOP) past AckWait once; then the
# same sweep in process (rmprune sweep). Loopback only. Prints wall times and
# checks every point is stored once and measured.
#
#   scripts/cluster_chaos.sh            (from the repository root)
#   LIMIT=500 FTL=500 scripts/cluster_chaos.sh   (a faster, smaller run)
#   CHAOS=0 INPROC=0 scripts/cluster_chaos.sh    (the cluster alone, no kills, no in-process run)
set -euo pipefail
LIMIT=${LIMIT:-1000}   # test images evaluated per point
FTL=${FTL:-1000}       # fine-tuning images per point (1 epoch)
ACK=${ACK:-10s}
NPORT=${NPORT:-14333}
HPORT=${HPORT:-18333}
CHAOS=${CHAOS:-1}
INPROC=${INPROC:-1}
RATIOS=0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8
DIR=$(mktemp -d /tmp/rmprune-chaos.XXXXXX)
BIN=$DIR/rmprune
go build -o "$BIN" .
echo "run dir $DIR; $(uptime)"

pids=()
cleanup() {
	for p in "${pids[@]}" ${SERVE:-}; do kill -CONT "$p" 2>/dev/null || true; kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
}
trap cleanup EXIT

"$BIN" serve --cluster --nats 127.0.0.1:$NPORT --addr 127.0.0.1:$HPORT --db "$DIR/cluster.db" --no-demo \
	--ack-wait "$ACK" --max-deliver 10 2>"$DIR/serve.log" &
SERVE=$!
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$HPORT/api/workers" >/dev/null && break; sleep 0.2; done
gen=0
start_worker() { # slot
	gen=$((gen + 1))
	"$BIN" worker --server nats://127.0.0.1:$NPORT --name "w$1-$gen" --threads 1 --cache "$DIR/cache$1" \
		2>"$DIR/w$1-$gen.log" &
	pids[$1]=$!
}
for i in 0 1 2; do start_worker $i; done

model=$(curl -sf -F name=demo -F file=@demo/resnet20-mnist.safetensors "http://127.0.0.1:$HPORT/api/models" |
	python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
body=$(printf '{"model_id":%s,"dataset":"mnist","ratios":[%s],"limit":%s,"finetune_epochs":1,"finetune_limit":%s,"threads":1}' \
	"$model" "$RATIOS" "$LIMIT" "$FTL")
t0=$(date +%s.%N)
sweep=$(curl -sf -H 'Content-Type: application/json' -d "$body" "http://127.0.0.1:$HPORT/api/sweeps" |
	python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
echo "sweep $sweep queued at $(date -u +%T)"

status() { curl -sf "http://127.0.0.1:$HPORT/api/sweeps/$sweep" | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])'; }
busy() { # a busy worker's slot, not $1
	curl -sf "http://127.0.0.1:$HPORT/api/workers" | python3 -c '
import json,sys
for w in json.load(sys.stdin)["workers"]:
    if w["current"] and not w["name"].startswith("w'"$1"'-"): print(w["name"].split("-")[0][1:]); break'
}
paused=no
last_kill=$(date +%s)
while :; do
	st=$(status)
	[[ $st == done || $st == failed ]] && break
	now=$(date +%s)
	if ((CHAOS && now - last_kill >= 20)); then
		i=$((RANDOM % 3))
		kill -9 "${pids[$i]}" 2>/dev/null || true
		echo "$(date -u +%T) SIGKILL slot $i (pid ${pids[$i]}); restarting it"
		start_worker $i
		last_kill=$now
		if [[ $paused == no ]]; then
			j=$(busy $i)
			if [[ -n $j ]]; then
				kill -STOP "${pids[$j]}"
				echo "$(date -u +%T) SIGSTOP slot $j past AckWait ($ACK)"
				(sleep 25; kill -CONT "${pids[$j]}" 2>/dev/null; echo "$(date -u +%T) SIGCONT slot $j") &
				paused=yes
			fi
		fi
	fi
	sleep 1
done
t1=$(date +%s.%N)
echo "cluster sweep $st in $(python3 -c "print(round($t1-$t0,1))") s; $(uptime)"
curl -sf "http://127.0.0.1:$HPORT/api/sweeps/$sweep" | python3 -c '
import json,sys,collections
d=json.load(sys.stdin)
ps=d["points"]; keys=[(p["form"],p["ratio"]) for p in ps]
print("points", len(ps), "distinct", len(set(keys)), "error", d.get("error",""))
bad=[k for p,k in zip(ps,keys) if not (p["top1"]>0 and p["images_per_s"]>0 and p["worker"] and p["cpu"])]
print("unmeasured", bad)
print("by worker", dict(collections.Counter(p["worker"] for p in ps)))
assert len(ps)==18 and len(set(keys))==18 and not bad and d["status"]=="done"'
grep -h "stale\|SIGKILL" "$DIR"/w*.log | head -5 || true
grep "sweep done" "$DIR/serve.log" || true
python3 - "$DIR/serve.log" <<'PY'
import re,sys,statistics as s
rows=[dict(re.findall(r'(\w+)=(\S+)',l)) for l in open(sys.argv[1]) if 'point stored' in l]
for k in ("compute_s","upload_s","publish_to_stored_s","store_s","result_bytes"):
    v=sorted(float(r[k]) for r in rows)
    print(f"{k}: median {s.median(v):.4g} min {v[0]:.4g} max {v[-1]:.4g} (n={len(v)})")
PY
cleanup
pids=(); SERVE=
((INPROC)) || exit 0

t2=$(date +%s.%N)
"$BIN" sweep --model demo/resnet20-mnist.safetensors --data mnist --ratios $RATIOS --limit "$LIMIT" \
	--finetune-epochs 1 --finetune-limit "$FTL" --db "$DIR/inproc.db" >"$DIR/inproc.log" 2>&1
t3=$(date +%s.%N)
echo "in-process sweep (threads: all cores) in $(python3 -c "print(round($t3-$t2,1))") s; $(uptime)"

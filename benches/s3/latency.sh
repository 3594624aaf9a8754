#!/usr/bin/env bash
# Thumbnails from the local store and from an S3 API server, with and
# without added latency, alternating: R rounds of three runs over the same
# seeded images (seed-images --count N --seed 3, 1024x768, two sizes each),
# the same workers, a fresh database each run:
#
#   local   --store DIR
#   s3      --store s3://BUCKET/p, straight to the server
#   s3+D    --store s3://BUCKET/p, through the fault proxy adding D ms to
#           every request (crates/bench/examples/fault-proxy.rs)
#
# Prints each run's thumbnails/s (the processor's items/s from the report),
# each round's s3+D / s3 ratio, and the medians.
#
#   benches/s3/latency.sh [--rounds R] [--images N] [--delay-ms D] [--workers W] [--taskq BIN] [--proxy BIN]
#
# Defaults: R=5, N=200, D=20, W unset: each run's own default (8 workers
# for the local store, 8 per core for S3). The S3 server is
# moto's (pip install 'moto[server]'), started on a free port; it runs on
# the same machine, so its own CPU time counts against the S3 runs.
set -euo pipefail

rounds=5 images=200 delay=20 workers=
taskq="${TASKQ_BIN:-target/release/taskq}"
proxy="target/release/examples/fault-proxy"
while [[ $# -gt 0 ]]; do
    case "$1" in
        --rounds) rounds="$2"; shift 2 ;;
        --images) images="$2"; shift 2 ;;
        --delay-ms) delay="$2"; shift 2 ;;
        --workers) workers="$2"; shift 2 ;;
        --taskq) taskq="$2"; shift 2 ;;
        --proxy) proxy="$2"; shift 2 ;;
        *) echo "usage: $0 [--rounds R] [--images N] [--delay-ms D] [--workers W] [--taskq BIN] [--proxy BIN]" >&2; exit 2 ;;
    esac
done
[[ -x "$taskq" ]] || { echo "$taskq: not an executable (cargo build --release -p taskq-cli)" >&2; exit 2; }
[[ -x "$proxy" ]] || { echo "$proxy: not an executable (cargo build --release -p taskq-bench --example fault-proxy)" >&2; exit 2; }
command -v moto_server >/dev/null || { echo "moto_server not found (pip install 'moto[server]')" >&2; exit 2; }

out="$(mktemp -d)"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
s3_port=$(free_port) proxy_port=$(free_port)
moto_server -H 127.0.0.1 -p "$s3_port" > "$out/moto.log" 2>&1 &
moto=$!
"$proxy" --listen "127.0.0.1:$proxy_port" --upstream "127.0.0.1:$s3_port" --delay-ms "$delay" > "$out/proxy.log" 2>&1 &
fault=$!
trap 'kill $moto $fault 2>/dev/null || true; rm -rf "$out"' EXIT
for _ in $(seq 1 100); do
    (exec 3<>/dev/tcp/127.0.0.1/"$s3_port") 2>/dev/null && break
    sleep 0.2
done

export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_ALLOW_HTTP=true AWS_REGION=us-east-1
direct="http://127.0.0.1:$s3_port"
delayed="http://127.0.0.1:$proxy_port"
bucket=taskq-bench
curl -sf -X PUT -H "Authorization: AWS4-HMAC-SHA256 Credential=bench/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00" "$direct/$bucket" > /dev/null
AWS_ENDPOINT_URL="$direct" "$taskq" seed-images --store "s3://$bucket/p" --count "$images" --seed 3
"$taskq" seed-images --store "$out/local" --count "$images" --seed 3

grep -m1 "model name" /proc/cpuinfo | sed 's/.*: /cpu: /'
echo "cores: $(nproc); images: $images; tasks: $((images * 2)); workers: ${workers:-default}; delay: ${delay} ms"

# One run; prints thumbnails/s.
one() {
    local store="$1" endpoint="$2"
    rm -f "$out/t.db" "$out/t.db-wal" "$out/t.db-shm"
    AWS_ENDPOINT_URL="$endpoint" "$taskq" run --processor thumbnail --store "$store" \
        --db "$out/t.db" --tasks "$out/local/tasks.json" ${workers:+--workers "$workers"} \
        --no-progress --report "$out/r.json" > "$out/run.txt" 2>&1 \
        || { cat "$out/run.txt" >&2; exit 1; }
    python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); assert r["counts"]["succeeded"] == r["counts"]["submitted"], r["counts"]; print("%.1f" % r["processor"]["items_per_s"])' "$out/r.json"
}

ratios=() locals=() plains=() delays=()
for r in $(seq 1 "$rounds"); do
    l=$(one "$out/local" "$direct")
    p=$(one "s3://$bucket/p" "$direct")
    d=$(one "s3://$bucket/p" "$delayed")
    ratio=$(awk -v d="$d" -v p="$p" 'BEGIN {printf "%.3f", d / p}')
    echo "round $r: local $l/s, s3 $p/s, s3+${delay}ms $d/s; s3+${delay}ms / s3 = $ratio"
    locals+=("$l") plains+=("$p") delays+=("$d") ratios+=("$ratio")
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
echo "median: local $(median "${locals[@]}")/s, s3 $(median "${plains[@]}")/s, s3+${delay}ms $(median "${delays[@]}")/s; ratio s3+${delay}ms / s3 $(median "${ratios[@]}")"

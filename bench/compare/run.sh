#!/usr/bin/env bash
# run.sh builds the comparison and runs Warp Mesh, NATS, Redis pub/sub and
# memberlist side by side on loopback, printing one markdown table per
# workload. Default: 2 s runs, one rerun of disturbed runs (about 5 min).
# --long: 5 s runs, two reruns. Extra arguments go to the compare binary
# (e.g. -systems warpmesh,nats -modes latency).
set -euo pipefail
cd "$(dirname "$0")"
export PATH="$PATH:/usr/local/go/bin"

dur=2s retries=1
args=()
for a in "$@"; do
	case "$a" in
	--long) dur=5s retries=2 ;;
	*) args+=("$a") ;;
	esac
done

if ! command -v redis-server >/dev/null; then
	echo "run.sh: installing redis-server" >&2
	apt-get install -y redis-server >/dev/null
fi

bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/compare" .

# A free 127.0.0.1 port for redis-server.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly no \
	--protected-mode yes --daemonize no --loglevel warning \
	--client-output-buffer-limit 'pubsub 0 0 0' >"$bin/redis.log" 2>&1 &
redis_pid=$!
trap 'kill "$redis_pid" 2>/dev/null; wait "$redis_pid" 2>/dev/null; rm -rf "$bin"' EXIT
for _ in $(seq 100); do
	redis-cli -h 127.0.0.1 -p "$port" ping >/dev/null 2>&1 && break
	sleep 0.05
done

REDIS_ADDR="127.0.0.1:$port" REDIS_PID="$redis_pid" \
	"$bin/compare" -duration "$dur" -retries "$retries" "${args[@]}"

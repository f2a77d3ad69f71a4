#!/usr/bin/env bash
# Direct delivery to many domains at 50 ms round-trip time: one message to one recipient in
# each of N domains (every domain's MX behind ../shared/bench's delay proxy), against the
# same message to one domain. Each domain is one connection and one transaction; the pool
# (--parallel, default 16) delivers domains at once.
# usage: benches/domains.sh [N] [RUNS]   (SMTPSEND=target/release/smtpsend by default)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-10}
RUNS=${2:-5}
SMTPSEND=${SMTPSEND:-target/release/smtpsend}
BENCH=${BENCH:-../shared/bench}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
sp=$(port); pp=$(port); dp=$(port)
python3 "$BENCH/smtp_server.py" "$sp" --log "$work/server.jsonl" >/dev/null 2>&1 &
python3 "$BENCH/delay_proxy.py" "$pp" "$sp" --delay-ms 25 --report "$work/proxy.jsonl" >/dev/null 2>&1 &
python3 benches/mx_dns.py "$dp" >/dev/null 2>&1 &
sleep 1
printf 'queue_on_tempfail = false\n' > "$work/config.toml"
msg=$(printf 'From: bench@example.org\nSubject: domains\n\nOne message, many domains.\n')
# Median wall time in ms of RUNS sends to the given recipients.
median_ms() {
  local times=()
  for _ in $(seq "$RUNS"); do
    local t0 t1
    t0=$(date +%s%N)
    printf '%s\n' "$msg" | "$SMTPSEND" --config "$work/config.toml" --direct --dns-server "127.0.0.1:$dp" \
      --mx-port "$pp" --tls off "$@" -f bench@example.org "${rcpts[@]}"
    t1=$(date +%s%N)
    times+=($(( (t1 - t0) / 1000000 )))
  done
  printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'
}
rcpts=(rcpt@d0.test)
one=$(median_ms)
rcpts=(); for i in $(seq 0 $((N - 1))); do rcpts+=("rcpt@d$i.test"); done
many_default=$(median_ms)
many_wide=$(median_ms --parallel "$N")
many_serial=$(median_ms --parallel 1)
delivered=$(wc -l < "$work/server.jsonl")
echo "| direct delivery at 50 ms RTT, median of $RUNS | ms | ratio to one domain |"
echo "|---|---|---|"
echo "| 1 domain | $one | 1.00 |"
echo "| $N domains, --parallel 1 | $many_serial | $(echo "scale=2; $many_serial / $one" | bc) |"
echo "| $N domains, default pool (16) | $many_default | $(echo "scale=2; $many_default / $one" | bc) |"
echo "| $N domains, --parallel $N | $many_wide | $(echo "scale=2; $many_wide / $one" | bc) |"
echo "(messages the server accepted in all: $delivered, expected $(( RUNS * (1 + 3 * N) )))"

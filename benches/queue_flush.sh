#!/usr/bin/env bash
# Queue flush at 50 ms round-trip time: N messages queued by smtpsend and flushed with one
# `smtpsend -q` (one connection, transactions pipelined), beside one msmtp process
# per message (what msmtpq does). Uses ../shared/bench's server and delay proxy.
# The queue run pipelines: every transaction is written behind the one before (small
# messages as BDAT LAST with their envelope; with DATA, the next envelope with the end of
# the message).
# usage: benches/queue_flush.sh [N]   (SMTPSEND=target/release/smtpsend by default)
#        SERVER_ARGS=--no-chunking benches/queue_flush.sh   (the DATA path)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-200}
SMTPSEND=${SMTPSEND:-target/release/smtpsend}
BENCH=${BENCH:-../shared/bench}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
sp=$(port); pp=$(port)
# shellcheck disable=SC2086 # SERVER_ARGS is a list of flags
python3 "$BENCH/smtp_server.py" "$sp" ${SERVER_ARGS:-} --log "$work/server.jsonl" >/dev/null 2>&1 &
python3 "$BENCH/delay_proxy.py" "$pp" "$sp" --delay-ms 25 --report "$work/proxy.jsonl" >/dev/null 2>&1 &
sleep 1
printf 'queue_dir = "%s"\n' "$work/queue" > "$work/config.toml"
msg=$(printf 'Subject: queued\n\nA short message, as cron sends them.\n')
for i in $(seq "$N"); do
  printf '%s %s\n' "$msg" "$i" | "$SMTPSEND" --config "$work/config.toml" --queue -f bench@example.org "rcpt$i@example.org"
done
start=$(date +%s.%N)
"$SMTPSEND" --config "$work/config.toml" -q --all --host 127.0.0.1 --port "$pp" --tls off
end=$(date +%s.%N)
left=$("$SMTPSEND" --config "$work/config.toml" -bp | head -1)
t_smtpsend=$(echo "$end - $start" | bc)
: > "$work/msmtp.log"
start=$(date +%s.%N)
for i in $(seq "$N"); do
  printf "%s %s\n" "$msg" "$i" | msmtp --host=127.0.0.1 --port="$pp" --tls=off --auth=off --from=bench@example.org "rcpt$i@example.org"
done
end=$(date +%s.%N)
t_msmtp=$(echo "$end - $start" | bc)
conns=$(wc -l < "$work/proxy.jsonl")
echo "| flush of $N queued messages at 50 ms RTT | seconds | connections |"
echo "|---|---|---|"
echo "| smtpsend -q (one connection) | $t_smtpsend | 1 |"
echo "| msmtp, one process per message | $t_msmtp | $N |"
echo "messages the server accepted: $(wc -l < "$work/server.jsonl") of $((2 * N))"
echo "ratio msmtp / smtpsend: $(echo "scale=1; $t_msmtp / $t_smtpsend" | bc)  (queue after the flush: $left; proxy connections in all: $conns)"

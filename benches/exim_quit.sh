#!/usr/bin/env bash
# Issue 16 (1): one small cleartext message to Exim 4.96 on 127.0.0.1, end to end (connect,
# EHLO, the transaction, QUIT, close), timed N times; the median in ms, beside the same sends
# with --no-pipelining, and beside a BASELINE binary when one is given (the same run, for a
# before/after). smtpsend used to write QUIT behind the end of the message (BDAT LAST, or
# the final dot), and Exim 4.96 answered such a send 200 ms late; QUIT now follows the
# final reply.
# Exim is the private instance of tests/exim.rs: the exim4-daemon-light package .ci/install
# unpacked, tests/exim/exim.conf, started by tests/exim/run-exim.sh; run as root.
# usage: benches/exim_quit.sh [N]   (SMTPSEND=target/release/smtpsend by default;
#        BASELINE=/path/to/older/smtpsend to compare)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-20}
SMTPSEND=${SMTPSEND:-target/release/smtpsend}
ROOT=${SMTPSEND_TEST_MTA_DIR:-/opt/smtpsend-test-mta}/exim4-daemon-light
work=$(mktemp -d)
launcher=
cleanup() {
    # End of file on the launcher's stdin stops Exim.
    if [ -n "$launcher" ]; then
        exec 3>&-
        wait "$launcher" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
sed -e "s|@DIR@|$work|g; s|@PORT@|$port|; s|@BANNER@|bench-$$|; s|@ROOT@|$ROOT|" \
    -e "s|@SIZE_LIMIT@|60M|; s|@RECIPIENTS_MAX@|100|" tests/exim/exim.conf > "$work/exim.conf"
printf 'bob: bob\n' > "$work/mailboxes"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost \
    -keyout "$work/key.pem" -out "$work/cert.pem" -days 2 2>/dev/null
exec 3> >(exec bash tests/exim/run-exim.sh "$work" "$ROOT" > /dev/null 2> "$work/launcher.log")
launcher=$!
# Until Exim greets.
for _ in $(seq 100); do
    if python3 -c 'import socket,sys; s=socket.create_connection(("127.0.0.1",int(sys.argv[1])),1); s.recv(100)' "$port" 2>/dev/null; then
        break
    fi
    sleep 0.05
done
printf 'queue_on_tempfail = false\n' > "$work/config.toml"
msg=$(printf 'From: bench@example.org\nTo: bob@example.net\nSubject: exim quit\n\nA short message, as cron sends them.\n')
# Median wall time in ms of N sends by $bin, with these extra flags.
bin=$SMTPSEND
median_ms() {
    local times=()
    for _ in $(seq "$N"); do
        local t0 t1
        t0=$(date +%s%N)
        printf '%s\n' "$msg" | "$bin" --config "$work/config.toml" --host 127.0.0.1 \
            --port "$port" --tls off "$@" -f bench@example.org bob@example.net
        t1=$(date +%s%N)
        times+=($(( (t1 - t0) / 1000000 )))
    done
    printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'
}
pipelined=$(median_ms)
unpipelined=$(median_ms --no-pipelining)
sends=2
if [ -n "${BASELINE:-}" ]; then
    bin=$BASELINE
    baseline=$(median_ms)
    sends=3
fi
# Every message delivered before counting.
for _ in $(seq 100); do
    [ -z "$(ls -A "$work/spool/input" 2>/dev/null)" ] && break
    sleep 0.05
done
delivered=$(find "$work/mail/bob/new" -type f 2>/dev/null | wc -l)
echo "| one small cleartext message to Exim 4.96 on loopback, median of $N | ms |"
echo "|---|---|"
echo "| smtpsend (pipelining on) | $pipelined |"
echo "| smtpsend --no-pipelining | $unpipelined |"
if [ -n "${BASELINE:-}" ]; then
    echo "| baseline $BASELINE (pipelining on) | $baseline |"
fi
echo "(messages Exim delivered: $delivered of $((sends * N)))"

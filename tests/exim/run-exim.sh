#!/bin/bash
# Runs the private Exim of tests/exim.rs for as long as its stdin is open.
#
#   run-exim.sh DIR ROOT
#
# ROOT is the exim4-daemon-light package as .ci/install unpacked it (ROOT/usr/sbin/exim4);
# DIR holds exim.conf and the TLS key and certificate the test wrote. This script gives the
# spool, log and mailbox directories and the key to the Exim user, starts the daemon in the
# foreground (`exim4 -C DIR/exim.conf -bdf`) as its child, prints READY, and waits for end
# of file on stdin. Then, or when the test process dies without running its destructors
# (its end of the pipe closes with it), it stops the daemon again. It must run as root, like
# Exim's daemon (root may name a configuration with -C and keep its privilege); it never
# touches the system's Exim (/etc/exim4, /var/spool/exim4, /var/log/exim4).
set -eu

dir=${1:?usage: run-exim.sh DIR ROOT}
root=${2:?usage: run-exim.sh DIR ROOT}
export PATH=/usr/sbin:/usr/bin:/sbin:/bin

# The receiving processes run as the Exim user (Debian-exim, made by .ci/install): they
# write the spool and the log and read the key when a client starts TLS. Deliveries run as
# that user too (the maildir transport's user).
mkdir -p "$dir/spool" "$dir/log" "$dir/mail"
chown Debian-exim:Debian-exim "$dir/spool" "$dir/log" "$dir/mail" "$dir/key.pem"
chmod 600 "$dir/key.pem"
chmod 755 "$dir"

pid=
reader=
stop() {
    if [ -n "$pid" ]; then
        kill -TERM "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
    if [ -n "$reader" ]; then
        kill "$reader" 2>/dev/null || true
    fi
}
trap stop EXIT
trap 'exit 1' HUP INT TERM PIPE

# stdin stays with this script: Exim reads nothing from it.
"$root/usr/sbin/exim4" -C "$dir/exim.conf" -bdf </dev/null &
pid=$!
echo READY

# Until the test closes its end (or dies), or the server ends on its own (a configuration it
# refuses): either ends this script, so a test sees a failed start at once.
# (A background job's stdin would be /dev/null: the test's end comes in as fd 3.)
exec 3<&0
cat <&3 >/dev/null &
reader=$!
wait -n "$pid" "$reader" || true

#!/bin/sh
# Runs the private Postfix instance of tests/postfix.rs for as long as its stdin is open.
#
#   run-postfix.sh DIR ROOT
#
# ROOT is the postfix package as .ci/install unpacked it (ROOT/usr/sbin/postfix); its
# programs are used, never an installed Postfix's. DIR/conf holds main.cf, master.cf, vmailbox and the TLS key and certificate (the test wrote
# them). This script gives DIR's directories to the users Postfix wants, starts the instance
# with `postfix -c DIR/conf start`, prints READY, and waits for end of file on stdin. Then,
# or when the test process dies without running its destructors (its end of the pipe closes
# with it), it stops the instance again. It must run as root, like any Postfix; it never
# touches the system's own Postfix (/etc/postfix/main.cf, /var/spool/postfix).
set -eu

dir=${1:?usage: run-postfix.sh DIR ROOT}
root=${2:?usage: run-postfix.sh DIR ROOT}
conf=$dir/conf
export PATH=$root/usr/sbin:/usr/sbin:/usr/bin:/sbin:/bin
export LD_LIBRARY_PATH=$root/usr/lib/postfix

# Postfix reads no table (main.cf included) that changed within the last second, as it could
# be half written: it sleeps 0.3 s and reads again. Just written, each would cost a second
# or two, so the files are made older than that.
backdate() {
    touch -d "@$(($(date +%s) - 2))" "$conf"/*
}
backdate

# data_directory belongs to mail_owner; the mailboxes to the unprivileged user that
# virtual(8) delivers as (virtual_minimum_uid keeps root out).
owner=$(postconf -c "$conf" -h mail_owner)
mkdir -p "$dir/queue" "$dir/data" "$dir/mail"
chown "$owner" "$dir/data"
uid=$(id -u nobody)
gid=$(id -g nobody)
chown "$uid:$gid" "$dir/mail"
postconf -c "$conf" -e "virtual_uid_maps = static:$uid" "virtual_gid_maps = static:$gid"
backdate

# Postfix daemons run as mail_owner and must be able to reach the queue: the directories
# above it may not be private to root.
chmod 755 "$dir"

# `postfix stop` would do, but it looks for the master's end once a second; this looks every
# 50 ms. `abort` sends the master SIGTERM (it passes it on to its children); `master -t`
# succeeds once the master's lock is free. After 5 s, `postfix stop` finishes the job (it
# kills the master's process group).
master=$(postconf -c "$conf" -h daemon_directory)/master
stop() {
    postfix -c "$conf" abort >/dev/null 2>&1 || return 0
    i=0
    until "$master" -c "$conf" -t 2>/dev/null; do
        i=$((i + 1))
        if [ "$i" -gt 100 ]; then
            postfix -c "$conf" stop >/dev/null 2>&1 || true
            return 0
        fi
        sleep 0.05
    done
}
# Whatever ends this script ends the instance: end of file on stdin, a failed start, a signal,
# or a test that died before reading READY (the write to its closed pipe raises SIGPIPE).
trap stop EXIT
trap 'exit 1' HUP INT TERM PIPE

# `start` runs the integrity checks, creates the queue, and returns once the master has
# bound its listeners (master -w); a taken port or a bad setting makes it fail here.
postfix -c "$conf" start
echo READY

# Until the test closes its end (or dies).
cat >/dev/null

#!/bin/sh
# Runs the private Dovecot auth service of tests/postfix/dovecot.rs for as long as its stdin
# is open.
#
#   run-dovecot.sh DIR
#
# DIR holds dovecot.conf and the passwd-file the test wrote. This script gives the password
# file to the user Dovecot's auth process runs as, starts `dovecot -F -c DIR/dovecot.conf`
# in the foreground as its child, and waits for end of file on stdin. Then, or when the
# test process dies without running its destructors (its end of the pipe closes with it),
# it stops Dovecot again. The test itself waits for the auth socket to answer. It must run
# as root, like Dovecot's master; it never touches the system's Dovecot (/etc/dovecot,
# /run/dovecot).
set -eu

dir=${1:?usage: run-dovecot.sh DIR}
conf=$dir/dovecot.conf
export PATH=/usr/sbin:/usr/bin:/sbin:/bin

# passwd-file lookups run in the auth process, as default_internal_user; smtpd runs as
# Postfix's mail_owner and must reach the socket below DIR.
user=$(doveconf -c "$conf" -h default_internal_user)
chown "$user" "$dir/passwd"
chmod 600 "$dir/passwd"
chmod 755 "$dir"

# SIGTERM makes the master stop its children and exit.
pid=
stop() {
    if [ -n "$pid" ]; then
        kill -TERM "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
}
trap stop EXIT
trap 'exit 1' HUP INT TERM PIPE

# stdin stays with this script: Dovecot reads nothing.
dovecot -F -c "$conf" </dev/null &
pid=$!

# Until the test closes its end (or dies).
cat >/dev/null

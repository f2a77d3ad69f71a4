#!/bin/bash
# Runs the private OpenSMTPD of tests/opensmtpd.rs for as long as its stdin is open.
#
#   run-opensmtpd.sh DIR ROOT
#
# ROOT is the opensmtpd package as .ci/install unpacked it (ROOT/usr/sbin/smtpd); DIR holds
# smtpd.conf, the TLS key and certificate and the tables the test wrote. OpenSMTPD has its
# paths compiled in: the queue (/var/spool/smtpd), the control socket (/var/run/smtpd.sock),
# the chroot of its unprivileged processes (/var/lib/opensmtpd/empty) and its delivery
# programs (/usr/libexec/opensmtpd). So smtpd runs in a mount namespace of its own where
# DIR/var is /var and ROOT/usr/libexec is /usr/libexec: the machine's /var and any
# installed OpenSMTPD are never touched, and instances of several tests do not meet. It
# must run as root, like smtpd. smtpd runs in the foreground (-d, its log on stderr) as this
# script's child, and is stopped when stdin closes or the test process dies without running
# its destructors (its end of the pipe closes with it).
set -eu

dir=${1:?usage: run-opensmtpd.sh DIR ROOT}
root=${2:?usage: run-opensmtpd.sh DIR ROOT}
export PATH=/usr/sbin:/usr/bin:/sbin:/bin

# DIR stays where it is in the namespace only if it is not below what gets covered.
case $dir in
/var/* | /usr/libexec/*)
    echo "run-opensmtpd.sh: $dir is under /var or /usr/libexec, which smtpd sees replaced" >&2
    exit 1
    ;;
esac

# The /var smtpd sees. It makes the queue's subdirectories itself and insists that the
# queue and its chroot belong to root and that no one else may write there.
mkdir -p "$dir/var/spool/smtpd" "$dir/var/lib/opensmtpd/empty" "$dir/var/run" "$dir/var/mail"
chmod 711 "$dir/var/spool/smtpd"
chmod 755 "$dir/var/lib/opensmtpd/empty"
# Deliveries run as smtpd.conf's virtual user vmail, which is nobody here: the userbase
# table says so, and the mailboxes belong to it. The directories above them must let that
# user through.
uid=$(id -u nobody)
gid=$(id -g nobody)
printf 'vmail %s:%s:%s\n' "$uid" "$gid" "$dir/mail" > "$dir/userbase"
mkdir -p "$dir/mail"
chown "$uid:$gid" "$dir/mail"
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

# stdin stays with this script: smtpd reads nothing. unshare execs the shell, which execs
# smtpd, so $pid is smtpd's own.
unshare --mount --propagation private sh -c '
    mount --bind "$1/var" /var
    mount --bind "$2/usr/libexec" /usr/libexec
    exec "$2/usr/sbin/smtpd" -d -f "$1/smtpd.conf"
' run-opensmtpd "$dir" "$root" </dev/null &
pid=$!
echo READY

# Until the test closes its end (or dies), or the server ends on its own (a configuration it
# refuses): either ends this script, so a test sees a failed start at once.
# (A background job's stdin would be /dev/null: the test's end comes in as fd 3.)
exec 3<&0
cat <&3 >/dev/null &
reader=$!
wait -n "$pid" "$reader" || true

#!/usr/bin/env python3
"""A loopback SMTP sink for trying smtpsend: accepts mail on 127.0.0.1 and prints it.

usage: loopback-sink.py [--port 2525] [--once]

Speaks enough ESMTP for smtpsend (EHLO with PIPELINING, 8BITMIME, SIZE; MAIL, RCPT, DATA,
RSET, NOOP, QUIT), un-dot-stuffs each message and prints its envelope and text to stdout.
With --once it exits after the first message. Python standard library only.
"""
import argparse
import socket
import sys


def serve(conn, out):
    f = conn.makefile("rb")
    w = conn.makefile("wb")

    def reply(text):
        w.write(text.encode() + b"\r\n")
        w.flush()

    reply("220 loopback-sink ESMTP ready")
    mail_from, rcpts, got = None, [], 0
    while True:
        line = f.readline()
        if not line:
            return got
        cmd = line.rstrip(b"\r\n").decode("utf-8", "replace")
        verb = cmd.split(" ", 1)[0].upper()
        if verb == "EHLO":
            w.write(b"250-loopback-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 SIZE 52428800\r\n")
            w.flush()
        elif verb == "HELO":
            reply("250 loopback-sink")
        elif verb == "MAIL":
            mail_from, rcpts = cmd[10:], []
            reply("250 2.1.0 ok")
        elif verb == "RCPT":
            rcpts.append(cmd[8:])
            reply("250 2.1.5 ok")
        elif verb == "DATA":
            if not rcpts:
                reply("554 5.5.1 no valid recipients")
                continue
            reply("354 end with <CRLF>.<CRLF>")
            body = []
            while True:
                data = f.readline()
                if not data:
                    return got
                if data == b".\r\n":
                    break
                body.append(data[1:] if data.startswith(b".") else data)
            got += 1
            out.write(f"--- message {got}: from {mail_from} to {', '.join(rcpts)}\n")
            out.write(b"".join(body).decode("utf-8", "replace"))
            out.write("--- end\n")
            out.flush()
            reply("250 2.0.0 queued")
            if ARGS.once:
                reply("221 2.0.0 bye")
                return got
        elif verb == "RSET":
            mail_from, rcpts = None, []
            reply("250 2.0.0 ok")
        elif verb == "NOOP":
            reply("250 2.0.0 ok")
        elif verb == "QUIT":
            reply("221 2.0.0 bye")
            return got
        else:
            reply("502 5.5.2 command not implemented")


def main():
    global ARGS
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=2525)
    p.add_argument("--once", action="store_true", help="exit after one message")
    ARGS = p.parse_args()
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", ARGS.port))
    srv.listen(8)
    print(f"loopback-sink listening on 127.0.0.1:{ARGS.port}", file=sys.stderr, flush=True)
    while True:
        conn, _ = srv.accept()
        with conn:
            if serve(conn, sys.stdout) and ARGS.once:
                return


if __name__ == "__main__":
    main()

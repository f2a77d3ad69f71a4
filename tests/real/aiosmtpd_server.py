#!/usr/bin/env python3
"""aiosmtpd on a loopback port, for smtpsend's interoperability tests (tests/real_servers.rs).

Modes:
  plain     no TLS, no AUTH
  starttls  STARTTLS required before MAIL (RFC 3207), AUTH PLAIN/LOGIN only after TLS
            and required before MAIL
  implicit  TLS from the first byte (RFC 8314 "submissions"), AUTH required before MAIL

The server binds --port (0 by default: the kernel picks a free port, so no two tests race
for one) and prints "READY <port>" on stdout once it accepts connections.

Each accepted message is written to OUT/msg-NNN/ (made under a temporary name, then renamed,
so a directory that exists is complete):
  mail_from     the reverse path, as given in MAIL FROM
  mail_options  MAIL parameters, one per line (BODY=8BITMIME, SIZE=...)
  rcpt_tos      accepted recipients, one per line, in order
  content       envelope.original_content: the DATA bytes with the dot-stuffing removed,
                CRLFs as received; nothing is added
  session       "tls=yes|no" and "auth=<login>|none"
OUT/auth.log gets one line per AUTH attempt: "<MECHANISM> <login> ok|fail".

Recipients whose local part starts with "reject" get 550 5.1.1 and those starting with
"defer" get 450 4.2.0, so the client's exit statuses can be checked against a real server.
"""

import argparse
import asyncio
import os
import logging
import ssl
import sys
import threading
import warnings

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


class Recorder:
    def __init__(self, out):
        self.out = out
        self.count = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@", 1)[0].lower()
        if local.startswith("reject"):
            return "550 5.1.1 <%s>: Recipient address rejected: User unknown" % address
        if local.startswith("defer"):
            return "450 4.2.0 <%s>: Recipient address rejected: Try again later" % address
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        name = "msg-%03d" % self.count
        tmp = os.path.join(self.out, ".tmp-" + name)
        os.mkdir(tmp)

        def put(file, data):
            with open(os.path.join(tmp, file), "wb") as f:
                f.write(data)

        tls = server.transport is not None and server.transport.get_extra_info("ssl_object") is not None
        auth = "none"
        if session.authenticated and isinstance(session.auth_data, LoginPassword):
            auth = session.auth_data.login.decode("utf-8", "replace")
        put("mail_from", (envelope.mail_from or "").encode("utf-8", "surrogateescape"))
        put("mail_options", "".join(o + "\n" for o in envelope.mail_options).encode())
        put("rcpt_tos", "".join(r + "\n" for r in envelope.rcpt_tos).encode("utf-8", "surrogateescape"))
        put("content", envelope.original_content)
        put("session", ("tls=%s\nauth=%s\n" % ("yes" if tls else "no", auth)).encode())
        os.rename(tmp, os.path.join(self.out, name))
        return "250 2.0.0 OK queued as %s" % name


def make_authenticator(out, user, password):
    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == user.encode()
            and auth_data.password == password.encode()
        )
        login = auth_data.login.decode("utf-8", "replace") if isinstance(auth_data, LoginPassword) else "?"
        with open(os.path.join(out, "auth.log"), "a") as f:
            f.write("%s %s %s\n" % (mechanism, login, "ok" if ok else "fail"))
        return AuthResult(success=ok, handled=False, auth_data=auth_data)

    return authenticator


async def serve(args):
    handler = Recorder(args.out)
    loop = asyncio.get_running_loop()
    ctx = None
    if args.mode != "plain":
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(args.cert, args.key)
    common = dict(hostname="aiosmtpd.test", decode_data=False, loop=loop)
    auth = dict(
        authenticator=make_authenticator(args.out, args.user, args.password),
        auth_required=True,
    )
    if args.mode == "plain":
        factory = lambda: SMTP(handler, **common)
        server_ssl = None
    elif args.mode == "starttls":
        factory = lambda: SMTP(
            handler, tls_context=ctx, require_starttls=True, auth_require_tls=True, **auth, **common
        )
        server_ssl = None
    else:
        # Implicit TLS: the socket is TLS before SMTP starts, so aiosmtpd's own
        # "AUTH only after STARTTLS" check does not apply (it only knows STARTTLS).
        factory = lambda: SMTP(handler, auth_require_tls=False, **auth, **common)
        server_ssl = ctx
    server = await loop.create_server(factory, host=args.host, port=args.port, ssl=server_ssl)
    port = server.sockets[0].getsockname()[1]
    print("READY %d" % port, flush=True)
    async with server:
        await server.serve_forever()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--mode", choices=["plain", "starttls", "implicit"], default="plain")
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--out", required=True)
    p.add_argument("--user", default="test")
    p.add_argument("--password", default="secret")
    args = p.parse_args()
    if args.mode != "plain" and not (args.cert and args.key):
        p.error("--cert and --key are needed for TLS modes")
    os.makedirs(args.out, exist_ok=True)
    # aiosmtpd warns that implicit-TLS mode "requires AUTH without requiring TLS" (it only
    # knows STARTTLS) and about its own deprecated login_data: noise in the test log.
    warnings.simplefilter("ignore")
    # aiosmtpd's log (connections, commands, replies) goes to stderr, which the test keeps in a
    # file and prints when it fails.
    logging.basicConfig(level=logging.DEBUG if os.environ.get("AIOSMTPD_DEBUG") else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    # The test holds our stdin open; when it ends (even by SIGKILL), so do we, so a killed
    # test run leaves no server behind.
    threading.Thread(target=lambda: (sys.stdin.buffer.read(), os._exit(0)), daemon=True).start()
    try:
        asyncio.run(serve(args))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())

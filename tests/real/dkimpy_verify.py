"""Verify the DKIM signatures of messages with dkimpy, for tests/dkim.rs.

Usage: dkimpy_verify.py RECORDS MESSAGE...

RECORDS holds one key record a line, "NAME<TAB>TXT", e.g.
"sel._domainkey.example.org<TAB>v=DKIM1; k=ed25519; p=...". dkimpy asks for keys through its
dnsfunc hook, which answers from that file only: no DNS query leaves this process.

For each MESSAGE (the exact bytes a server received) one line is printed:
"MESSAGE: pass" or "MESSAGE: fail: <dkimpy's log>". Exits 0 when every message passes, 1
when any fails, 2 on a usage error.
"""

import io
import logging
import sys

import dkim


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    records = {}
    with open(argv[1], encoding="ascii") as f:
        for line in f:
            name, _, txt = line.rstrip("\n").partition("\t")
            records[name.rstrip(".").lower()] = txt.encode("ascii")

    def dnsfunc(name, timeout=5):
        key = name.decode("ascii") if isinstance(name, bytes) else name
        return records.get(key.rstrip(".").lower())

    failed = False
    for path in argv[2:]:
        with open(path, "rb") as f:
            message = f.read()
        log = io.StringIO()
        logger = logging.getLogger("dkimpy_verify." + path)
        logger.setLevel(logging.DEBUG)
        logger.addHandler(logging.StreamHandler(log))
        try:
            ok = dkim.verify(message, logger=logger, dnsfunc=dnsfunc, minkey=1024)
        except Exception as e:  # dkimpy raises for malformed signatures
            ok = False
            log.write(f"{type(e).__name__}: {e}\n")
        if ok:
            print(f"{path}: pass")
        else:
            failed = True
            print(f"{path}: fail: {log.getvalue().strip()!r}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

#!/usr/bin/env python3
"""A minimal authoritative DNS server on loopback for the direct-delivery benchmark.

usage: mx_dns.py PORT [--address 127.0.0.1]

Every name NAME answers MX 10 mx.NAME; every name starting with "mx." answers A ADDRESS;
everything else (AAAA included) is NOERROR with no answer. UDP only, one question per
query: enough for smtpsend's resolver, nothing more.
"""
import socket
import struct
import sys


def read_name(packet, offset):
    labels = []
    while True:
        length = packet[offset]
        offset += 1
        if length == 0:
            return ".".join(labels), offset
        labels.append(packet[offset:offset + length].decode("ascii"))
        offset += length


def encode_name(name):
    out = b""
    for label in name.rstrip(".").split("."):
        out += bytes([len(label)]) + label.encode("ascii")
    return out + b"\0"


def answer(query, address):
    ident, flags, qdcount = struct.unpack("!HHH", query[:6])
    if qdcount != 1:
        return None
    name, end = read_name(query, 12)
    qtype, qclass = struct.unpack("!HH", query[end:end + 4])
    question = query[12:end + 4]
    rdata = None
    if qtype == 15 and not name.lower().startswith("mx."):  # MX
        rdata = struct.pack("!H", 10) + encode_name("mx." + name)
    elif qtype == 1 and name.lower().startswith("mx."):  # A
        rdata = socket.inet_aton(address)
    # QR, AA, RD copied, RA; NOERROR.
    header = struct.pack("!HHHHHH", ident, 0x8400 | (flags & 0x0100) | 0x0080, 1,
                         1 if rdata else 0, 0, 0)
    out = header + question
    if rdata:
        out += b"\xc0\x0c" + struct.pack("!HHIH", qtype, qclass, 300, len(rdata)) + rdata
    return out


def main():
    args = sys.argv[1:]
    if not args or "-h" in args or "--help" in args:
        sys.exit(__doc__)
    address = args[args.index("--address") + 1] if "--address" in args else "127.0.0.1"
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", int(args[0])))
    while True:
        query, peer = sock.recvfrom(512)
        try:
            reply = answer(query, address)
        except (IndexError, struct.error, UnicodeDecodeError):
            reply = None
        if reply:
            sock.sendto(reply, peer)


if __name__ == "__main__":
    main()

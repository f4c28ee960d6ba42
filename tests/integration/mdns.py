#!/usr/bin/python3
"""mDNS from Python's socket module: a DNS-SD browser and a listener that
share no code with lamina or libmdnsd, for test_discovery.py to check what
laminad announces independently.  Run in a network namespace:

    ip netns exec NS python3 mdns.py browse _lamina._tcp.local. SECONDS
        {"INSTANCE": {"port": P, "target": HOST, "txt": {K: V},
                      "a": [IP...]}}   (one JSON object on stdout)
    ip netns exec NS python3 mdns.py listen SECONDS
        every record heard, one JSON object a line:
        {"name", "type", "ttl", "data", "from"}

It joins 224.0.0.251 on every interface with an IPv4 address but
loopback, asks from port 5353 (answers come by multicast, RFC 6762 5.2),
and asks again every 0.3 s for what it has not resolved yet.
"""
import json
import select
import socket
import struct
import subprocess
import sys
import time

GROUP, PORT = "224.0.0.251", 5353
A, PTR, TXT, SRV = 1, 12, 16, 33


def interfaces():
    out = subprocess.run(["ip", "-j", "-4", "addr", "show"],
                         capture_output=True, text=True, check=True).stdout
    return [a["local"] for i in json.loads(out) if i["ifname"] != "lo"
            for a in i.get("addr_info", [])]


def open_socket():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 255)
    s.bind(("", PORT))
    addrs = interfaces()
    for a in addrs:
        s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                     socket.inet_aton(GROUP) + socket.inet_aton(a))
    return s, addrs


def encode_name(name):
    out = b""
    for label in name.rstrip(".").split("."):
        b = label.encode()
        out += bytes([len(b)]) + b
    return out + b"\0"


def query(questions):
    q = struct.pack("!6H", 0, 0, len(questions), 0, 0, 0)
    for name, qtype in questions:
        q += encode_name(name) + struct.pack("!2H", qtype, 1)
    return q


def read_name(p, off):
    labels, end, jumps = [], None, 0
    while True:
        n = p[off]
        if n & 0xc0 == 0xc0:
            if end is None:
                end = off + 2
            off = (n & 0x3f) << 8 | p[off + 1]
            jumps += 1
            if jumps > 64:
                raise ValueError("pointer loop")
            continue
        if n == 0:
            return ".".join(labels) + ".", end if end is not None else off + 1
        labels.append(p[off + 1:off + 1 + n].decode(errors="replace"))
        off += 1 + n


def parse(p):
    """The resource records of message p: (name, type, ttl, data)."""
    _, flags, qd, an, ns, ar = struct.unpack("!6H", p[:12])
    off = 12
    for _ in range(qd):
        _, off = read_name(p, off)
        off += 4
    records = []
    for _ in range(an + ns + ar):
        name, off = read_name(p, off)
        rtype, _, ttl, rdlen = struct.unpack("!HHIH", p[off:off + 10])
        off += 10
        rd = p[off:off + rdlen]
        if rtype == A and rdlen == 4:
            data = socket.inet_ntoa(rd)
        elif rtype == PTR:
            data = read_name(p, off)[0]
        elif rtype == SRV:
            prio, weight, port = struct.unpack("!3H", rd[:6])
            data = [port, read_name(p, off + 6)[0]]
        elif rtype == TXT:
            data, k = {}, 0
            while k < len(rd):
                n = rd[k]
                s = rd[k + 1:k + 1 + n].decode(errors="replace")
                k += 1 + n
                if "=" in s:
                    key, _, v = s.partition("=")
                    data.setdefault(key, v)
        else:
            data = rd.hex()
        records.append((name, rtype, ttl, data, bool(flags & 0x8000)))
        off += rdlen
    return records


def send(s, addrs, msg):
    for a in addrs:
        s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF,
                     socket.inet_aton(a))
        s.sendto(msg, (GROUP, PORT))


def browse(service, seconds):
    s, addrs = open_socket()
    ptrs, srv, txt, a = set(), {}, {}, {}
    deadline, next_ask = time.time() + seconds, 0
    while time.time() < deadline:
        if time.time() >= next_ask:
            qs = [(service, PTR)]
            qs += [(i, SRV) for i in ptrs if i not in srv]
            qs += [(i, TXT) for i in ptrs if i not in txt]
            qs += [(t, A) for _, t in srv.values() if t not in a]
            send(s, addrs, query(qs))
            next_ask = time.time() + 0.3
        r, _, _ = select.select([s], [], [], 0.05)
        if not r:
            continue
        p, _ = s.recvfrom(9000)
        try:
            records = parse(p)
        except (ValueError, IndexError, struct.error):
            continue
        for name, rtype, ttl, data, _ in records:
            if ttl == 0:
                continue
            if rtype == PTR and name == service:
                ptrs.add(data)
            elif rtype == SRV:
                srv[name] = data
            elif rtype == TXT:
                txt[name] = data
            elif rtype == A:
                a.setdefault(name, [])
                if data not in a[name]:
                    a[name].append(data)
    found = {}
    for inst in ptrs:
        if inst in srv and inst in txt:
            port, target = srv[inst]
            label = inst[:-len(service) - 1]
            found[label] = {"port": port, "target": target,
                            "txt": txt[inst], "a": a.get(target, [])}
    return found


def listen(seconds):
    s, _ = open_socket()
    deadline = time.time() + seconds
    while time.time() < deadline:
        r, _, _ = select.select([s], [], [], 0.05)
        if not r:
            continue
        p, src = s.recvfrom(9000)
        try:
            records = parse(p)
        except (ValueError, IndexError, struct.error):
            continue
        for name, rtype, ttl, data, response in records:
            if response:
                print(json.dumps({"name": name, "type": rtype, "ttl": ttl,
                                  "data": data, "from": src[0],
                                  "t": time.time()}), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "browse":
        print(json.dumps(browse(sys.argv[2], float(sys.argv[3]))))
    else:
        listen(float(sys.argv[2]))

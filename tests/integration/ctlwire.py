"""laminad's control channel by hand, for the tests: the fleet key's file
and fingerprint, protobuf fields, the fleet handshake and sealed frames,
written from docs/formats.md with Python's hashlib alone (so it also checks
that the C code, control/proto/ctl.c, does what the document says).

    key = ctlwire.load_key(path)              # 32 bytes
    ch = ctlwire.Channel(port, key)           # handshake; key=None: anonymous
    raw = ch.send(ctlwire.request(1, 15, ctlwire.field(1, b"d-x")))
    reply = ch.recv()                         # {field: [values]} or None
    ch.send_raw(raw)                          # replay what was sent
"""
import hashlib
import os
import socket
import struct

PROTOCOL = 1
DIR_TO_LAMINAD, DIR_TO_CLIENT = 1, 2
# lamina.Request's bodies (lamina.proto)
DESCRIBE, LOAD_STAGE, START, STOP, STATS, TEARDOWN, SHUTDOWN, DRAIN = \
    10, 11, 12, 13, 14, 15, 16, 17
STORE_QUERY, PUSH_FILE = 18, 19


# ---- the key ----

def key_path(env=None):
    """The default fleet key file of lamina/fleet.h."""
    env = os.environ if env is None else env
    x = env.get("XDG_CONFIG_HOME")
    if x and x.startswith("/"):
        return os.path.join(x, "lamina", "fleet.key")
    return os.path.join(env.get("HOME") or os.path.expanduser("~"),
                        ".config", "lamina", "fleet.key")


def load_key(path):
    with open(path) as f:
        return bytes.fromhex(f.read().strip())


def write_key(path, key):
    """A key file as lamina makes it (0600)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key.hex() + "\n")
    return path


def fingerprint(key):
    return hashlib.blake2b(key, digest_size=32,
                           person=b"lamina-fleet-fp1").hexdigest()[:16]


# ---- protobuf, as much as the tests need ----

def varint(n):
    out = b""
    while True:
        b, n = n & 0x7f, n >> 7
        if not n:
            return out + bytes([b])
        out += bytes([b | 0x80])


def field(num, v):
    if isinstance(v, str):
        v = v.encode()
    if isinstance(v, bytes):
        return varint(num << 3 | 2) + varint(len(v)) + v
    return varint(num << 3) + varint(v)


def parse(buf):
    """A message's fields: {number: [int or bytes, ...]}."""
    out, i = {}, 0
    while i < len(buf):
        key, i = _varint_at(buf, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = _varint_at(buf, i)
        elif wt == 2:
            n, i = _varint_at(buf, i)
            v, i = buf[i:i + n], i + n
        elif wt == 1:
            v, i = buf[i:i + 8], i + 8
        elif wt == 5:
            v, i = buf[i:i + 4], i + 4
        else:
            raise ValueError(f"wire type {wt}")
        out.setdefault(num, []).append(v)
    return out


def _varint_at(buf, i):
    n = shift = 0
    while True:
        b = buf[i]
        i += 1
        n |= (b & 0x7f) << shift
        shift += 7
        if not b & 0x80:
            return n, i


def request(rid, body_num, body=b""):
    """An encoded lamina.Request with id rid and body field body_num."""
    return field(1, rid) + field(body_num, body)


def error_of(reply):
    """(code, message) of a parsed Reply's error, or None."""
    if 2 not in reply:
        return None
    err = parse(reply[2][0])
    code = err.get(1, [0])[0]
    if code >= 1 << 63:
        code -= 1 << 64
    return code, err.get(2, [b""])[0].decode()


# ---- the handshake and sealed frames ----

def _kdf(master, sub_id):
    return hashlib.blake2b(b"", key=master, digest_size=32,
                           salt=struct.pack("<Q", sub_id) + bytes(8),
                           person=b"laminact" + bytes(8)).digest()


def derive(key, ns, nc):
    """(Pc, Ps, Kcs, Ksc) for key (None: anonymous) and both nonces."""
    master = hashlib.blake2b(ns + nc, key=key or bytes(32), digest_size=32,
                             person=b"lamina-ctl-v1-ms").digest()
    return tuple(_kdf(master, i) for i in (1, 2, 3, 4))


def tag(k, direction, seq, body):
    return hashlib.blake2b(bytes([direction]) + struct.pack(">Q", seq) +
                           body, key=k, digest_size=32).digest()


def recv_exact(s, n):
    """n bytes, or None when the connection ended (closed or reset: a
    laminad closing with a refused frame unread resets it)."""
    buf = b""
    while len(buf) < n:
        try:
            chunk = s.recv(n - len(buf))
        except ConnectionResetError:
            return None
        if not chunk:
            return None
        buf += chunk
    return buf


def recv_frame(s):
    """One frame's payload, or None when the connection closed."""
    h = recv_exact(s, 4)
    if h is None:
        return None
    n, = struct.unpack(">I", h)
    return recv_exact(s, n)


def plain(body):
    return struct.pack(">I", len(body)) + body


class Refused(Exception):
    pass


class Channel:
    """A client connection to laminad's control port after the handshake.
    Refused (with laminad's message) when laminad refuses it."""

    def __init__(self, port, key=None, host="127.0.0.1", timeout=30,
                 answer=None):
        self.s = socket.create_connection((host, port), timeout=timeout)
        g = recv_frame(self.s)
        if g is None:
            raise Refused("closed before the greeting")
        self.greeting = parse(g)
        hello = parse(self.greeting[3][0])
        self.ns = hello[2][0]
        self.fp = hello.get(4, [b""])[0].decode()
        self.nc = os.urandom(32)
        self.trusted = bool(key) and bool(self.fp)
        pc, self.ps, kcs, ksc = derive(key if self.trusted else None,
                                       self.ns, self.nc)
        self.tx, self.rx, self.tx_seq, self.rx_seq = kcs, ksc, 0, 0
        hello = field(1, PROTOCOL) + field(2, self.nc)
        if self.trusted:
            hello += field(3, pc)
        self.answer = plain(field(2, hello)) if answer is None else answer
        self.s.sendall(self.answer)
        w = recv_frame(self.s)
        if w is None:
            raise Refused("closed after the answer")
        w = parse(w)
        if error_of(w):
            raise Refused(error_of(w)[1])
        proof = parse(w[3][0]).get(3, [b""])[0]
        if self.trusted and proof != self.ps:
            raise Refused("laminad did not prove the key")

    def seal(self, body):
        """The sealed frame of body (the next sequence number)."""
        f = struct.pack(">IQ", 8 + len(body) + 32, self.tx_seq) + body + \
            tag(self.tx, DIR_TO_LAMINAD, self.tx_seq, body)
        self.tx_seq += 1
        return f

    def send(self, body):
        f = self.seal(body)
        self.s.sendall(f)
        return f

    def send_raw(self, data):
        self.s.sendall(data)

    def recv(self):
        """The next reply, parsed, or None when laminad closed."""
        p = recv_frame(self.s)
        if p is None:
            return None
        seq, = struct.unpack(">Q", p[:8])
        body, t = p[8:-32], p[-32:]
        if seq != self.rx_seq or t != tag(self.rx, DIR_TO_CLIENT, seq, body):
            raise ValueError("a reply whose sequence or tag is wrong")
        self.rx_seq += 1
        return parse(body)

    def call(self, rid, body_num, body=b""):
        self.send(request(rid, body_num, body))
        return self.recv()

    def closed(self):
        """Whether laminad closed the connection (nothing more comes)."""
        try:
            return self.s.recv(1) == b""
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False

    def close(self):
        self.s.close()

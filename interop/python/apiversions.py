#!/usr/bin/python3
"""Ask a broker which API keys it advertises (ApiVersions v0, raw socket).

Usage: apiversions.py HOST:PORT [groups]
Without "groups": prints "key min max" per advertised API.
With "groups": prints "yes" when every classic consumer-group API
(OffsetCommit 8, OffsetFetch 9, FindCoordinator 10, JoinGroup 11,
Heartbeat 12, LeaveGroup 13, SyncGroup 14) is advertised, else "no".
The interop checks use this to SKIP group checks until groups exist.
"""
import socket
import struct
import sys

GROUP_KEYS = {8, 9, 10, 11, 12, 13, 14}


def api_versions(addr, timeout=5.0):
    host, port = addr.rsplit(":", 1)
    client_id = b"gregor-interop"
    body = struct.pack(">hhih", 18, 0, 1, len(client_id)) + client_id
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        s.sendall(struct.pack(">i", len(body)) + body)
        n = struct.unpack(">i", _read(s, 4))[0]
        if n < 10 or n > 1 << 20:
            raise ValueError("implausible response size %d" % n)
        buf = _read(s, n)
    corr, err, count = struct.unpack(">ihi", buf[:10])
    if corr != 1 or err != 0 or count < 0 or 10 + 6 * count > len(buf):
        raise ValueError("bad ApiVersions response corr=%d err=%d count=%d" % (corr, err, count))
    out = {}
    for i in range(count):
        key, lo, hi = struct.unpack(">hhh", buf[10 + 6 * i:16 + 6 * i])
        out[key] = (lo, hi)
    return out


def _read(s, n):
    b = b""
    while len(b) < n:
        chunk = s.recv(n - len(b))
        if not chunk:
            raise EOFError("connection closed")
        b += chunk
    return b


def has_groups(addr):
    try:
        return GROUP_KEYS <= set(api_versions(addr))
    except Exception:
        return False


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[2] == "groups":
        print("yes" if has_groups(sys.argv[1]) else "no")
    else:
        for k, (lo, hi) in sorted(api_versions(sys.argv[1]).items()):
            print(k, lo, hi)

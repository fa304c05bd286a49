#!/usr/bin/env python3
"""Small HTTP/1.1 clients for scripts/bench.sh (stdlib only, loopback).

  storm  --port P --path /x [--clients 200]
      Opens N keep-alive connections, then sends one GET on each at the same
      instant and records each client's latency (send -> last body byte).
  load   --port P --pattern '/mem/m%06d.bin' --count N [--conns 16]
      GETs every URL of the pattern once over a few keep-alive connections
      (cache warm-up, and filling the edge for the memory scenario).
  headers --port P --path /x
      Prints the stored size of one response's header fields (name + value
      bytes, hop-by-hop fields left out), as the edge would keep them.
  stream --port P --path /x --expect FILE [--waiters 10] [--spread 50-200]
      One leader GET, then N more of the same URL sent 50..200 ms after it
      (evenly spread), each on its own connection, read as fast as they
      come. Records for each reader the wall-clock time (unix us) it sent
      its request, got the response head, its first and its last body
      byte, and whether the body's SHA-256 equals FILE's.
  slow --port P --pattern '/big/60m.bin?c=%d' --clients 40 --pid PID
      N GETs of distinct URLs at once from clients that read slowly
      (--read-rate bytes/s each, small receive buffers) for --hold seconds
      and then hang up; meanwhile samples the resident memory of PID and
      its descendants. Then samples it for --settle more seconds. Prints
      the peak (over the whole run), the value when the clients left and
      at the end.

Each prints one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import socket
import statistics
import sys
import time

HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
}


class HttpError(Exception):
    pass


async def read_response(reader: asyncio.StreamReader) -> tuple[int, list[tuple[str, str]], int]:
    """Reads one response; returns (status, headers, body length)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
        raise HttpError(f"bad status line {lines[0]!r}")
    status = int(parts[1])
    headers = []
    for line in lines[1:]:
        if not line:
            continue
        name, _, value = line.partition(":")
        headers.append((name.strip().lower(), value.strip()))
    hmap = dict(headers)
    size = 0
    if "content-length" in hmap:
        size = int(hmap["content-length"])
        await reader.readexactly(size)
    elif hmap.get("transfer-encoding", "").lower() == "chunked":
        while True:
            n = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(n + 2)
            size += n
            if n == 0:
                break
    return status, headers, size


async def read_head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
        raise HttpError(f"bad status line {lines[0]!r}")
    hmap = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            hmap[name.strip().lower()] = value.strip()
    return int(parts[1]), hmap


async def body_chunks(reader: asyncio.StreamReader, hmap: dict[str, str], limit: int = 1 << 16):
    """Yields the body's bytes as they arrive (Content-Length, chunked, or
    until close); a body cut short raises IncompleteReadError."""
    if "content-length" in hmap:
        left = int(hmap["content-length"])
        while left:
            b = await reader.read(min(limit, left))
            if not b:
                raise asyncio.IncompleteReadError(b"", left)
            left -= len(b)
            yield b
    elif hmap.get("transfer-encoding", "").lower() == "chunked":
        while True:
            n = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if n == 0:
                await reader.readuntil(b"\r\n")
                return
            while n:
                b = await reader.read(min(limit, n))
                if not b:
                    raise asyncio.IncompleteReadError(b"", n)
                n -= len(b)
                yield b
            await reader.readexactly(2)
    else:
        while b := await reader.read(limit):
            yield b


def unix_us() -> int:
    return time.time_ns() // 1000


def request(host: str, port: int, path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: meridian-bench\r\n\r\n".encode()


async def storm(args: argparse.Namespace) -> dict:
    conns = []
    for _ in range(args.clients):
        conns.append(await asyncio.wait_for(asyncio.open_connection(args.host, args.port), 5))
    go = asyncio.Event()
    latencies: list[float] = []
    errors: list[str] = []
    statuses: dict[int, int] = {}

    async def one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await go.wait()
        t0 = time.perf_counter()
        try:
            writer.write(request(args.host, args.port, args.path))
            await writer.drain()
            status, _, _ = await asyncio.wait_for(read_response(reader), args.timeout)
            latencies.append((time.perf_counter() - t0) * 1000.0)
            statuses[status] = statuses.get(status, 0) + 1
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, HttpError) as e:
            errors.append(type(e).__name__)
        finally:
            writer.close()

    tasks = [asyncio.create_task(one(r, w)) for r, w in conns]
    await asyncio.sleep(0.2)  # every task is parked on the event
    go.set()
    await asyncio.gather(*tasks)
    lat = sorted(latencies)
    return {
        "clients": args.clients,
        "ok": len(lat),
        "errors": len(errors),
        "statuses": {str(k): v for k, v in statuses.items()},
        "p50_ms": statistics.median(lat) if lat else None,
        "p99_ms": lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else None,
        "max_ms": lat[-1] if lat else None,
        "min_ms": lat[0] if lat else None,
    }


def tls_context(args: argparse.Namespace):
    """--tls: a client context for the bench's own self-signed certificate
    (not verified: this warms caches, it is not a client to copy)."""
    if not args.tls:
        return None
    import ssl

    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


async def load(args: argparse.Namespace) -> dict:
    todo = iter(range(args.count))
    ok = 0
    bad: dict[str, int] = {}
    t0 = time.perf_counter()

    async def worker() -> None:
        nonlocal ok
        reader, writer = await asyncio.open_connection(args.host, args.port, ssl=tls_context(args))
        try:
            for i in todo:
                writer.write(request(args.host, args.port, args.pattern % i))
                await writer.drain()
                status, _, _ = await asyncio.wait_for(read_response(reader), args.timeout)
                if status == 200:
                    ok += 1
                else:
                    bad[str(status)] = bad.get(str(status), 0) + 1
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(args.conns)))
    return {"ok": ok, "not_ok": bad, "seconds": round(time.perf_counter() - t0, 2)}


async def headers(args: argparse.Namespace) -> dict:
    reader, writer = await asyncio.open_connection(args.host, args.port)
    writer.write(request(args.host, args.port, args.path))
    await writer.drain()
    status, hs, size = await asyncio.wait_for(read_response(reader), args.timeout)
    writer.close()
    kept = [(n, v) for n, v in hs if n not in HOP_BY_HOP]
    return {
        "status": status,
        "body_bytes": size,
        "header_fields": len(kept),
        "header_bytes": sum(len(n) + len(v) for n, v in kept),
    }


async def stream(args: argparse.Namespace) -> dict:
    h = hashlib.sha256()
    with open(args.expect, "rb") as f:
        while b := f.read(1 << 20):
            h.update(b)
    want = h.hexdigest()
    lo, _, hi = args.spread.partition("-")
    lo_ms, hi_ms = float(lo), float(hi or lo)
    n = args.waiters
    offsets = [0.0] + [lo_ms + (hi_ms - lo_ms) * i / max(1, n - 1) for i in range(n)]

    async def reader_task(role: str, offset_ms: float, t0: float) -> dict:
        r: dict = {"role": role, "offset_ms": round(offset_ms, 1)}
        reader, writer = await asyncio.wait_for(asyncio.open_connection(args.host, args.port), 5)
        try:
            await asyncio.sleep(max(0.0, t0 + offset_ms / 1000.0 - time.perf_counter()))
            r["sent_us"] = unix_us()
            writer.write(request(args.host, args.port, args.path))
            await writer.drain()
            status, hmap = await asyncio.wait_for(read_head(reader), args.timeout)
            r["head_us"] = unix_us()
            r["status"] = status
            r["cache"] = " ".join(
                f"{k}: {hmap[k]}" for k in ("cache-status", "x-cache-status", "x-varnish", "age") if k in hmap
            )
            digest, size = hashlib.sha256(), 0

            async def read_all() -> None:
                nonlocal size
                async for b in body_chunks(reader, hmap):
                    if size == 0:
                        r["first_byte_us"] = unix_us()
                    size += len(b)
                    digest.update(b)

            await asyncio.wait_for(read_all(), args.timeout)
            r["done_us"] = unix_us()
            r["bytes"] = size
            r["identical"] = digest.hexdigest() == want
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, HttpError, ValueError) as e:
            r["error"] = type(e).__name__
            r["identical"] = False
        finally:
            writer.close()
        return r

    t0 = time.perf_counter() + 0.2  # every connection is open by then
    readers = await asyncio.gather(
        *(reader_task("leader" if i == 0 else "waiter", off, t0) for i, off in enumerate(offsets))
    )
    return {"readers": readers, "expect_bytes": os.path.getsize(args.expect), "waiters": n}


def memfd_body_kb(pid: int) -> int:
    """KiB in Meridian's body memory files (`cache.zero-copy-*`): shared
    memory that VmRSS counts only where a mapping has been read."""
    total = 0
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return 0
    for fd in fds[:1_000_000]:
        path = f"/proc/{pid}/fd/{fd}"
        try:
            target = os.readlink(path)
            # A memory file, or a nameless file on Meridian's private
            # large-page tmpfs (meridian_sendfile::is_body_file).
            if target.startswith("/memfd:meridian-body") or (
                target.startswith("/#") and target.endswith(" (deleted)")
            ):
                total += os.stat(path).st_size
        except OSError:
            continue
    return total // 1024


def tree_rss_kb(pid: int) -> tuple[int, int]:
    """(sum of resident memory, largest VmHWM) in KiB over pid and its
    descendants. Resident memory is VmRSS without its shared-memory part,
    plus every body memory file whole (mapped and read or not)."""
    rss = hwm = 0
    todo = [pid]
    seen = 0
    while todo and seen < 10_000:
        p = todo.pop()
        seen += 1
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        rss += int(line.split()[1])
                    elif line.startswith("RssShmem:"):
                        rss -= int(line.split()[1])
                    elif line.startswith("VmHWM:"):
                        hwm = max(hwm, int(line.split()[1]))
            rss += memfd_body_kb(p)
            for t in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{t}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except (OSError, ValueError):
            continue
    return rss, hwm


async def slow(args: argparse.Namespace) -> dict:
    peak = {"rss_kb": 0, "hwm_kb": 0}
    series: list[tuple[float, int]] = []
    t_start = time.perf_counter()
    stop = asyncio.Event()

    async def sampler() -> None:
        while not stop.is_set():
            rss, hwm = tree_rss_kb(args.pid)
            peak["rss_kb"] = max(peak["rss_kb"], rss)
            peak["hwm_kb"] = max(peak["hwm_kb"], hwm)
            series.append((round(time.perf_counter() - t_start, 1), rss))
            try:
                await asyncio.wait_for(stop.wait(), args.sample_ms / 1000.0)
            except asyncio.TimeoutError:
                pass

    rss_before, _ = tree_rss_kb(args.pid)
    sampling = asyncio.create_task(sampler())
    got: list[int] = [0] * args.clients
    heads: list[float] = []
    statuses: dict[str, int] = {}
    errors: list[str] = []
    deadline = time.perf_counter() + args.hold
    chunk = 16 * 1024

    async def client(i: int) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # A small receive window, so the kernel does not read for us.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        sock.setblocking(False)
        try:
            await asyncio.wait_for(asyncio.get_running_loop().sock_connect(sock, (args.host, args.port)), 5)
            reader, writer = await asyncio.open_connection(sock=sock, limit=chunk)
        except (OSError, asyncio.TimeoutError) as e:
            errors.append(type(e).__name__)
            sock.close()
            return
        try:
            writer.write(request(args.host, args.port, args.pattern % i))
            await writer.drain()
            sent = time.perf_counter()
            status, hmap = await asyncio.wait_for(read_head(reader), max(0.1, deadline - time.perf_counter()))
            heads.append((time.perf_counter() - sent) * 1000.0)
            statuses[str(status)] = statuses.get(str(status), 0) + 1
            t0 = time.perf_counter()
            async for b in body_chunks(reader, hmap, chunk):
                got[i] += len(b)
                now = time.perf_counter()
                if now >= deadline:
                    break
                # Paced: never ahead of read_rate since the head arrived.
                due = t0 + got[i] / args.read_rate
                if due > now:
                    await asyncio.sleep(min(due, deadline) - now)
                if time.perf_counter() >= deadline:
                    break
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, HttpError, ValueError) as e:
            errors.append(type(e).__name__)
        finally:
            writer.close()

    await asyncio.gather(*(client(i) for i in range(args.clients)))
    left_at = round(time.perf_counter() - t_start, 1)
    rss_left, _ = tree_rss_kb(args.pid)
    await asyncio.sleep(args.settle)
    stop.set()
    await sampling
    rss_after, hwm = tree_rss_kb(args.pid)
    # The peak over the whole run: a proxy may go on filling after the
    # clients left.
    peak_rss = max(peak["rss_kb"], rss_left, rss_after)
    # A coarse series (one point per second) to show how memory came down.
    coarse, last = [], -1.0
    for t, rss in series:
        if t - last >= 1.0:
            coarse.append([t, rss])
            last = t
    return {
        "clients": args.clients,
        "read_rate": args.read_rate,
        "hold_s": args.hold,
        "settle_s": args.settle,
        "statuses": statuses,
        "errors": len(errors),
        "error_kinds": sorted(set(errors)),
        "bytes_read_total": sum(got),
        "bytes_read_min": min(got) if got else 0,
        "head_ms_p50": statistics.median(heads) if heads else None,
        "head_ms_max": max(heads) if heads else None,
        "rss_before_kb": rss_before,
        "peak_rss_kb": peak_rss,
        "hwm_kb": max(peak["hwm_kb"], hwm),
        "rss_left_kb": rss_left,
        "rss_after_kb": rss_after,
        "left_at_s": left_at,
        "series": coarse,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=["storm", "load", "headers", "stream", "slow"])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--path", default="/")
    p.add_argument("--pattern", default="/mem/m%06d.bin")
    p.add_argument("--count", type=int, default=0)
    p.add_argument("--clients", type=int, default=200)
    p.add_argument("--conns", type=int, default=16)
    p.add_argument("--timeout", type=float, default=30.0)
    p.add_argument("--expect", help="stream: the origin's file, to compare bodies with")
    p.add_argument("--waiters", type=int, default=10)
    p.add_argument("--spread", default="50-200", help="stream: waiters' send times after the leader, ms")
    p.add_argument("--pid", type=int, default=0, help="slow: the server's root process")
    p.add_argument("--read-rate", type=float, default=256 * 1024, help="slow: bytes/s per client")
    p.add_argument("--hold", type=float, default=30.0, help="slow: seconds the clients stay")
    p.add_argument("--settle", type=float, default=60.0, help="slow: seconds sampled after they leave")
    p.add_argument("--sample-ms", type=float, default=100.0)
    p.add_argument("--tls", action="store_true", help="load: over TLS (certificate not verified)")
    args = p.parse_args()
    fn = {"storm": storm, "load": load, "headers": headers, "stream": stream, "slow": slow}[args.mode]
    print(json.dumps(asyncio.run(fn(args))))
    return 0


if __name__ == "__main__":
    sys.exit(main())

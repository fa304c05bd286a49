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

Each prints one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
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


async def load(args: argparse.Namespace) -> dict:
    todo = iter(range(args.count))
    ok = 0
    bad: dict[str, int] = {}
    t0 = time.perf_counter()

    async def worker() -> None:
        nonlocal ok
        reader, writer = await asyncio.open_connection(args.host, args.port)
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


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=["storm", "load", "headers"])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--path", default="/")
    p.add_argument("--pattern", default="/mem/m%06d.bin")
    p.add_argument("--count", type=int, default=0)
    p.add_argument("--clients", type=int, default=200)
    p.add_argument("--conns", type=int, default=16)
    p.add_argument("--timeout", type=float, default=30.0)
    args = p.parse_args()
    fn = {"storm": storm, "load": load, "headers": headers}[args.mode]
    print(json.dumps(asyncio.run(fn(args))))
    return 0


if __name__ == "__main__":
    sys.exit(main())

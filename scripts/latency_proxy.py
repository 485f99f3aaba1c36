#!/usr/bin/env python3
"""A loopback HTTP proxy that adds a fixed delay to every call, and counts the calls in flight.

Real IAM answers over the network, tens of milliseconds a call; moto on loopback answers in a
few. This sits in front of the moto harness so a benchmark sees the latency that real accounts
have and measures how many calls a client keeps in flight:

  scripts/latency_proxy.py --port 5098 --upstream-port 5099 --delay-ms 50

Every request to 127.0.0.1:<port> is held for --delay-ms, then forwarded to
127.0.0.1:<upstream-port> (one HTTP/1.0 connection per call, so the answer is never chunked)
and its answer returned on the client's keep-alive connection. Only plain HTTP/1.1 with a
Content-Length body is spoken (what the AWS SDKs and botocore send to an http endpoint).

Bounds: listens on 127.0.0.1 only; at most --max-connections client connections (more wait);
request heads of at most 64 KiB and bodies of at most 16 MiB (else 413 and the connection is
closed); an upstream that does not answer within 600 s gets the call a 504.

Control (answered here, not delayed, not counted):
  GET  /_proxy/stats   -> {"calls", "max_in_flight", "busy_seconds", "mean_in_flight",
                           "in_flight_seconds": {"1": s, "2": s, ...}}
       mean_in_flight: the time-weighted mean number of calls in flight while at least one is
       (busy_seconds: how long at least one was); in_flight_seconds: how long exactly n were.
  POST /_proxy/reset   -> {"reset": true}

Prints `ready http://127.0.0.1:<port>` once listening; exits 0 on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time

MAX_HEAD = 64 * 1024
MAX_BODY = 16 * 1024 * 1024
UPSTREAM_TIMEOUT = 600.0
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te",
              "trailer", "upgrade", "content-length"}


class BadRequest(Exception):
    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


class Stats:
    """Calls in flight over time: a step function integrated as it changes."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.calls = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.since = time.monotonic()
        self.seconds_at: dict[int, float] = {}

    def _advance(self) -> None:
        now = time.monotonic()
        if self.in_flight:
            self.seconds_at[self.in_flight] = self.seconds_at.get(self.in_flight, 0.0) + (
                now - self.since)
        self.since = now

    def start(self) -> None:
        self._advance()
        self.calls += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def end(self) -> None:
        self._advance()
        self.in_flight -= 1

    def snapshot(self) -> dict:
        self._advance()
        busy = sum(self.seconds_at.values())
        weighted = sum(n * s for n, s in self.seconds_at.items())
        return {
            "calls": self.calls,
            "max_in_flight": self.max_in_flight,
            "busy_seconds": round(busy, 3),
            "mean_in_flight": round(weighted / busy, 2) if busy else 0.0,
            "in_flight_seconds": {str(n): round(s, 3) for n, s in sorted(self.seconds_at.items())},
        }


async def read_head(reader: asyncio.StreamReader) -> bytes | None:
    """The request or status line and headers, or None at a clean end of the stream."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as err:
        if not err.partial:
            return None
        raise BadRequest(400, "Bad Request") from None
    except asyncio.LimitOverrunError:
        raise BadRequest(413, "Request Header Fields Too Large") from None
    return head


def parse_headers(head: bytes) -> tuple[str, list[tuple[str, str]]]:
    lines = head.decode("latin-1").split("\r\n")
    headers = []
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise BadRequest(400, "Bad Request")
        headers.append((name.strip(), value.strip()))
    return lines[0], headers


def header(headers: list[tuple[str, str]], name: str) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return value
    return None


def response(status: int, reason: str, body: bytes, content_type: str = "text/plain",
             close: bool = False) -> bytes:
    head = (f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n")
    if close:
        head += "Connection: close\r\n"
    return (head + "\r\n").encode("latin-1") + body


class Proxy:
    def __init__(self, upstream_port: int, delay: float, max_connections: int):
        self.upstream_port = upstream_port
        self.delay = delay
        self.stats = Stats()
        self.connections = asyncio.Semaphore(max_connections)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async with self.connections:
            try:
                while await self.one(reader, writer):
                    pass
            except BadRequest as err:
                writer.write(response(err.status, err.reason, err.reason.encode(), close=True))
            except (ConnectionError, asyncio.IncompleteReadError):
                pass
            finally:
                try:
                    await writer.drain()
                    writer.close()
                    await writer.wait_closed()
                except (ConnectionError, OSError):
                    pass

    async def one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Serves one request; False when the client's connection is done."""
        head = await read_head(reader)
        if head is None:
            return False
        request_line, headers = parse_headers(head)
        parts = request_line.split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise BadRequest(400, "Bad Request")
        method, target, _ = parts
        if header(headers, "transfer-encoding"):
            raise BadRequest(501, "Not Implemented")
        try:
            length = int(header(headers, "content-length") or "0")
        except ValueError:
            raise BadRequest(400, "Bad Request") from None
        if not 0 <= length <= MAX_BODY:
            raise BadRequest(413, "Payload Too Large")
        body = await reader.readexactly(length)
        keep_alive = (header(headers, "connection") or "").lower() != "close"

        if target.startswith("/_proxy/"):
            writer.write(self.control(method, target))
        else:
            self.stats.start()
            try:
                await asyncio.sleep(self.delay)
                writer.write(await self.forward(method, target, headers, body))
            finally:
                self.stats.end()
        await writer.drain()
        return keep_alive

    def control(self, method: str, target: str) -> bytes:
        if (method, target) == ("GET", "/_proxy/stats"):
            body = self.stats.snapshot()
        elif (method, target) == ("POST", "/_proxy/reset"):
            self.stats.reset()
            body = {"reset": True}
        else:
            return response(404, "Not Found", b"no such control endpoint")
        return response(200, "OK", json.dumps(body).encode(), "application/json")

    async def forward(self, method: str, target: str, headers: list[tuple[str, str]],
                      body: bytes) -> bytes:
        try:
            return await asyncio.wait_for(self._forward(method, target, headers, body),
                                          UPSTREAM_TIMEOUT)
        except asyncio.TimeoutError:
            return response(504, "Gateway Timeout", b"upstream timed out")
        except (ConnectionError, OSError, asyncio.IncompleteReadError, BadRequest) as err:
            return response(502, "Bad Gateway", f"upstream: {err}".encode())

    async def _forward(self, method: str, target: str, headers: list[tuple[str, str]],
                       body: bytes) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.upstream_port,
                                                       limit=MAX_HEAD)
        try:
            lines = [f"{method} {target} HTTP/1.0"]
            lines += [f"{k}: {v}" for k, v in headers if k.lower() not in HOP_BY_HOP]
            lines += [f"Content-Length: {len(body)}", "Connection: close", "", ""]
            writer.write("\r\n".join(lines).encode("latin-1") + body)
            await writer.drain()
            head = await read_head(reader)
            if head is None:
                raise BadRequest(502, "empty answer")
            status_line, answer_headers = parse_headers(head)
            length = header(answer_headers, "content-length")
            if length is not None:
                if not length.isdigit() or int(length) > MAX_BODY:
                    raise BadRequest(502, "bad or too large Content-Length")
                answer = await reader.readexactly(int(length))
            else:  # HTTP/1.0: the answer ends with the connection
                chunks, total = [], 0
                while chunk := await reader.read(65536):
                    total += len(chunk)
                    if total > MAX_BODY:
                        raise BadRequest(502, "answer too large")
                    chunks.append(chunk)
                answer = b"".join(chunks)
        finally:
            writer.close()
        _, _, status = status_line.partition(" ")
        out = [f"HTTP/1.1 {status}"]
        out += [f"{k}: {v}" for k, v in answer_headers if k.lower() not in HOP_BY_HOP]
        out += [f"Content-Length: {len(answer)}", "", ""]
        return "\r\n".join(out).encode("latin-1") + answer


async def main_async(args: argparse.Namespace) -> int:
    proxy = Proxy(args.upstream_port, args.delay_ms / 1000, args.max_connections)
    try:
        server = await asyncio.start_server(proxy.serve, "127.0.0.1", args.port, limit=MAX_HEAD)
    except OSError as err:
        print(f"latency_proxy: cannot listen on 127.0.0.1:{args.port}: {err}", file=sys.stderr)
        return 1
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"ready http://127.0.0.1:{args.port}", flush=True)
    async with server:
        await stop.wait()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--port", type=int, required=True, help="port on 127.0.0.1")
    parser.add_argument("--upstream-port", type=int, required=True,
                        help="the port of the server on 127.0.0.1 that answers")
    parser.add_argument("--delay-ms", type=float, default=50.0)
    parser.add_argument("--max-connections", type=int, default=256)
    args = parser.parse_args()
    if not 0 <= args.delay_ms <= 10_000 or not 1 <= args.max_connections <= 4096:
        print("latency_proxy: --delay-ms must be 0..10000 and --max-connections 1..4096",
              file=sys.stderr)
        return 2
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())

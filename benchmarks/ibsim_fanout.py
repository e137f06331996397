"""ibsim fan-out benchmark: 100 symbols ticking ~10 times a second each, streamed to two
clients for ~10 s. Prints p50/p99 fan-out delay (engine emit -> client receive) and the
simulator's CPU share, against a baseline measured in the same run.

How the delay is measured: ibsim runs with --stamp-ticks, which appends to every quote a
private tickGeneric (type 9999) holding time.time() at the moment the engine emitted it. The
ib_insync client keeps that value in Ticker.ticks with the packet's arrival time
(wrapper.lastTime, taken when the socket delivered the data); delay = arrival - stamp.
Same machine, same clock.

Runs (each client is its own process, so two clients do not share one event loop):
  1. ibsim  -> 2 ib_insync clients   (what the suite sees)
  2. ibsim  -> 2 raw asyncio clients (server cost without ib_insync's decoding)
  3. baseline: a bare asyncio server sending the same number and size of messages per
     interval to 2 raw asyncio clients (the floor for Python + loopback on this machine)

Usage: python benchmarks/ibsim_fanout.py [--duration 10] [--symbols 100]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import struct
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STAMP = 9999
START = "2024-03-05T10:00:00-05:00"
SPEED = 100  # tape seconds per wall second: most engine ticks (every 0.1 s) move each symbol


def percentile(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(int(len(xs) * q), len(xs) - 1)]


def symbols(n: int) -> list[str]:
    return [f"S{i:03d}" for i in range(n)]


# ------------------------------------------------------------------ client roles
def role_ib_client(port: int, client_id: int, n: int, duration: float) -> dict:
    from ib_insync import IB, Stock

    ib = IB()
    ib.connect("127.0.0.1", port, clientId=client_id, timeout=10)
    delays: list[float] = []
    ticks = 0

    def on_pending(tickers) -> None:
        nonlocal ticks
        for t in tickers:
            for tick in t.ticks:
                ticks += 1
                if tick.tickType == STAMP:
                    delays.append((tick.time.timestamp() - tick.price) * 1000.0)

    for sym in symbols(n):
        ib.reqMktData(Stock(sym, "SMART", "USD"))
    ib.sleep(1.0)  # warm-up: subscriptions, first full quotes
    ib.pendingTickersEvent += on_pending
    ib.sleep(duration)
    ib.pendingTickersEvent -= on_pending
    stats = ib.client.connectionStats()
    ib.disconnect()
    return {"delays": delays, "ticks": ticks, "bytes": stats.numBytesRecv}


async def _raw_client(port: int, client_id: int, n: int, duration: float) -> dict:
    from ibsim.wire.protocol import frame, frame_bytes

    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"API\0" + frame_bytes(b"v157..176"))
    writer.write(frame([71, 2, client_id, ""]))
    for i, sym in enumerate(symbols(n)):
        writer.write(frame([1, 11, 1000 + i, 0, sym, "STK", "", 0.0, "", "", "SMART", "",
                            "USD", "", "", 0, "", 0, 0, ""]))
    await writer.drain()
    return await _read_stamps(reader, writer, duration)


async def _read_stamps(reader, writer, duration: float, warmup: float = 1.0) -> dict:
    delays: list[float] = []
    frames = nbytes = 0
    begin = time.monotonic()
    buf = b""
    while time.monotonic() - begin < warmup + duration:
        try:
            chunk = await asyncio.wait_for(reader.read(1 << 16), 0.5)
        except TimeoutError:
            continue
        if not chunk:
            break
        now = time.time()
        counting = time.monotonic() - begin >= warmup
        buf += chunk
        pos = 0
        while len(buf) - pos >= 4:
            (length,) = struct.unpack_from(">I", buf, pos)
            if len(buf) - pos - 4 < length:
                break
            body = buf[pos + 4:pos + 4 + length]
            pos += 4 + length
            if counting:
                frames += 1
                nbytes += 4 + length
                if body.startswith(b"45\x00") or body.startswith(b"STAMP\x00"):
                    fields = body.split(b"\x00")
                    if body.startswith(b"STAMP") or fields[3] == str(STAMP).encode():
                        delays.append((now - float(fields[-2])) * 1000.0)
        buf = buf[pos:]
    writer.close()
    return {"delays": delays, "frames": frames, "bytes": nbytes}


def role_raw_client(port: int, client_id: int, n: int, duration: float) -> dict:
    return asyncio.run(_raw_client(port, client_id, n, duration))


async def _echo_client(port: int, duration: float) -> dict:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    return await _read_stamps(reader, writer, duration)


def role_echo_client(port: int, duration: float) -> dict:
    return asyncio.run(_echo_client(port, duration))


def role_echo_server(quotes: int, frames_per_quote: int, frame_size: int, interval: float,
                     clients: int) -> None:
    """Every `interval`, send each client `quotes` groups of `frames_per_quote` frames of
    `frame_size` bytes; the last frame of a group carries time.time()."""

    async def main() -> None:
        transports: list[asyncio.Transport] = []
        ready = asyncio.Event()

        class P(asyncio.Protocol):
            def connection_made(self, transport) -> None:
                transports.append(transport)
                if len(transports) >= clients:
                    ready.set()

        server = await asyncio.get_running_loop().create_server(P, "127.0.0.1", 0)
        print(server.sockets[0].getsockname()[1], flush=True)
        await ready.wait()
        filler_len = max(frame_size - 4 - 6, 1)
        filler = struct.pack(">I", filler_len + 6) + b"x" * filler_len + b"\x00" * 6
        while transports and not all(t.is_closing() for t in transports):
            began = time.perf_counter()
            for _ in range(quotes):
                stamp = f"STAMP\x00{time.time()!r}\x00".encode()
                group = filler * (frames_per_quote - 1) + struct.pack(">I", len(stamp)) + stamp
                for t in transports:
                    if not t.is_closing():
                        t.write(group)
            await asyncio.sleep(max(interval - (time.perf_counter() - began), 0))

    asyncio.run(main())


# ------------------------------------------------------------------ orchestration
def spawn(*args: str) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, __file__, *args], stdout=subprocess.PIPE,
                            text=True, env=env)


def collect(procs: list[subprocess.Popen[str]], timeout: float) -> list[dict]:
    out = []
    for p in procs:
        stdout, _ = p.communicate(timeout=timeout)
        out.append(json.loads(stdout.strip().splitlines()[-1]))
    return out


def run_ibsim(role: str, n: int, duration: float) -> tuple[list[dict], float, dict]:
    import psutil

    from ibsim.ctl import ctl_call
    from ibsim.testing import start_server

    with start_server(start=START, symbols=symbols(n), speed=SPEED, tick_interval=0.1,
                      stamp_ticks=True, log_level="WARNING") as server:
        proc = psutil.Process(server.pid)
        clients = [spawn("--role", role, "--port", str(server.port), "--client-id", str(cid),
                         "--symbols", str(n), "--duration", str(duration))
                   for cid in (1, 2)]
        time.sleep(1.0)  # both clients connected and subscribed
        proc.cpu_percent(None)
        quotes0 = ctl_call(server.port, "state")  # warm the ctl path too
        t0 = time.monotonic()
        time.sleep(duration)
        cpu = proc.cpu_percent(None)
        elapsed = time.monotonic() - t0
        results = collect(clients, timeout=duration + 60)
        del quotes0
    return results, cpu, {"elapsed": elapsed}


def run_baseline(quotes: int, frames_per_quote: int, frame_size: int,
                 duration: float) -> tuple[list[dict], float]:
    import psutil

    server = spawn("--role", "echo-server", "--quotes", str(quotes), "--fpq",
                   str(frames_per_quote), "--size", str(frame_size))
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        clients = [spawn("--role", "echo-client", "--port", str(port), "--duration",
                         str(duration)) for _ in range(2)]
        proc = psutil.Process(server.pid)
        time.sleep(1.0)
        proc.cpu_percent(None)
        time.sleep(duration)
        cpu = proc.cpu_percent(None)
        results = collect(clients, timeout=duration + 60)
    finally:
        server.kill()
        server.wait(10)
    return results, cpu


def summary(name: str, results: list[dict], cpu: float, duration: float) -> dict:
    delays = [d for r in results for d in r["delays"]]
    row = {"run": name, "stamped_quotes": len(delays),
           "quotes_per_s_per_client": len(delays) / len(results) / duration,
           "p50_ms": percentile(delays, 0.50), "p99_ms": percentile(delays, 0.99),
           "server_cpu_pct_of_one_core": cpu}
    print(f"{name:<34} quotes/s/client {row['quotes_per_s_per_client']:8.0f}   "
          f"p50 {row['p50_ms']:7.2f} ms   p99 {row['p99_ms']:7.2f} ms   "
          f"server CPU {cpu:5.1f}% of one core")
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--symbols", type=int, default=100)
    ap.add_argument("--role", default="main")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--client-id", type=int, default=1)
    ap.add_argument("--quotes", type=int, default=100)
    ap.add_argument("--fpq", type=int, default=3)
    ap.add_argument("--size", type=int, default=30)
    a = ap.parse_args()
    if a.role == "ib-client":
        print(json.dumps(role_ib_client(a.port, a.client_id, a.symbols, a.duration)))
        return 0
    if a.role == "raw-client":
        print(json.dumps(role_raw_client(a.port, a.client_id, a.symbols, a.duration)))
        return 0
    if a.role == "echo-client":
        print(json.dumps(role_echo_client(a.port, a.duration)))
        return 0
    if a.role == "echo-server":
        role_echo_server(a.quotes, a.fpq, a.size, 0.1, 2)
        return 0

    print(f"ibsim fan-out: {a.symbols} symbols, 2 clients, {a.duration:.0f} s per run "
          f"(cpus: {os.cpu_count()})")
    ib_res, ib_cpu, _ = run_ibsim("ib-client", a.symbols, a.duration)
    ib_row = summary("ibsim -> 2 ib_insync clients", ib_res, ib_cpu, a.duration)
    raw_res, raw_cpu, _ = run_ibsim("raw-client", a.symbols, a.duration)
    raw_row = summary("ibsim -> 2 raw asyncio clients", raw_res, raw_cpu, a.duration)
    # baseline: same messages per quote and bytes per message as ibsim sent the raw clients
    r0 = raw_res[0]
    stamped = max(len(r0["delays"]), 1)
    fpq = max(round(r0["frames"] / stamped), 1)
    size = max(round(r0["bytes"] / max(r0["frames"], 1)), 12)
    quotes_per_interval = max(round(stamped / a.duration / 10), 1)
    base_res, base_cpu = run_baseline(quotes_per_interval, fpq, size, a.duration)
    base_row = summary("baseline asyncio loopback", base_res, base_cpu, a.duration)
    print(f"(baseline shape: {quotes_per_interval} quotes per 0.1 s, {fpq} frames of ~{size} "
          "bytes per quote, as measured from ibsim)")
    for row in (ib_row, raw_row):
        print(f"ratio {row['run']:<32} p50 x{row['p50_ms'] / base_row['p50_ms']:.1f}   "
              f"p99 x{row['p99_ms'] / base_row['p99_ms']:.1f}   "
              f"CPU x{row['server_cpu_pct_of_one_core'] / max(base_cpu, 0.1):.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A TCP proxy on 127.0.0.1 that delays every byte by a fixed time in each direction.

    python benchmarks/proxy.py --target 2525 --delay 0.010     # prints its port, then serves

Each direction has a reader that timestamps every chunk as it arrives and queues it, and a
writer that sends each chunk once its time has come.  Reading never waits for writing, so
chunks sent back to back are all in flight at once, as on a long link: the proxy adds latency
(``2 * delay`` per round trip), not a bandwidth limit, and does not serialise the exchange.
An end of stream is forwarded after the same delay (a half-close); a reset closes both sides.

It exits after ``--lifetime`` seconds at the latest, so a forgotten proxy cannot linger.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import sys

HOST = "127.0.0.1"
READ_SIZE = 256 * 1024


def _nodelay(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


async def _deliver(queue: asyncio.Queue[tuple[float, bytes]], writer: asyncio.StreamWriter) -> None:
    loop = asyncio.get_running_loop()
    while True:
        due, data = await queue.get()
        wait = due - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        if not data:  # end of stream, delayed like the data before it
            if writer.can_write_eof():
                writer.write_eof()
            return
        writer.write(data)
        await writer.drain()


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
    delivery = asyncio.create_task(_deliver(queue, writer))
    try:
        while True:
            data = await reader.read(READ_SIZE)
            queue.put_nowait((loop.time() + delay, data))
            if not data:
                break
        await delivery
    finally:
        delivery.cancel()
        with contextlib.suppress(BaseException):
            await delivery


async def _serve(
    client_r: asyncio.StreamReader,
    client_w: asyncio.StreamWriter,
    target: int,
    delay: float,
) -> None:
    try:
        server_r, server_w = await asyncio.wait_for(asyncio.open_connection(HOST, target), 10.0)
    except (OSError, asyncio.TimeoutError):
        client_w.close()
        return
    _nodelay(client_w)
    _nodelay(server_w)
    pumps = [
        asyncio.create_task(_pump(client_r, server_w, delay)),
        asyncio.create_task(_pump(server_r, client_w, delay)),
    ]
    try:
        # A reset on either side ends both directions.
        done, pending = await asyncio.wait(pumps, return_when=asyncio.FIRST_EXCEPTION)
        for task in pending:
            if any(t.exception() is not None for t in done):
                task.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)
    finally:
        for w in (client_w, server_w):
            w.close()


async def main_async(target: int, delay: float, port: int, lifetime: float) -> None:
    server = await asyncio.start_server(
        lambda r, w: _serve(r, w, target, delay), HOST, port, reuse_address=True
    )
    bound = server.sockets[0].getsockname()[1]
    sys.stdout.write(f"{bound}\n")
    sys.stdout.flush()
    async with server:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(server.serve_forever(), lifetime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--target", type=int, required=True, help="port on 127.0.0.1")
    parser.add_argument("--delay", type=float, default=0.010, help="seconds, each way")
    parser.add_argument("--port", type=int, default=0, help="listen port (0: any free one)")
    parser.add_argument("--lifetime", type=float, default=3600.0, help="exit after this many s")
    args = parser.parse_args()
    asyncio.run(main_async(args.target, args.delay, args.port, args.lifetime))


if __name__ == "__main__":
    main()

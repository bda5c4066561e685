"""An asyncio service on eddic's ``AsyncApp``: a small HTTP server (the standard library's
asyncio streams, so the example needs nothing else; FastAPI or Starlette handlers await the
same calls) that takes orders and answers their status, while a serving worker runs them.

    python examples/async_service.py            # serves on a free port, places two orders

``POST /orders`` with a JSON body ``{"item": ...}`` submits an order and answers 202 with its
id; ``GET /orders/<id>`` answers the instance's status and result. The handlers never block the
event loop: every eddic call is awaited. Run as a script, it places two orders against itself,
prints what it got back, and stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import tempfile
from pathlib import Path

from eddic import AsyncApp, Sleep, WorkflowContext, activity, workflow


@activity
async def pack(item: str) -> str:
    await asyncio.sleep(0.05)  # an async activity: it runs on eddic's activity loop
    return f"parcel of {item}"


@workflow
async def order(ctx: WorkflowContext, item: str) -> str:
    parcel = await pack(item)
    await Sleep(0.1)
    return parcel


async def handle(app: AsyncApp, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    request = (await reader.readline()).decode().split()
    headers = {}
    while (line := (await reader.readline()).decode().strip()) != "":
        name, _, value = line.partition(":")
        headers[name.lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    method, path = request[0], request[1]
    if method == "POST" and path == "/orders":
        item = json.loads(body)["item"]
        status, answer = 202, {"id": await app.submit(order, item)}
    elif method == "GET" and path.startswith("/orders/"):
        info = await app.get_instance(path.removeprefix("/orders/"))
        status, answer = 200, {"status": info["status"], "result": info["output_data"]}
    else:
        status, answer = 404, {"error": "no such route"}
    payload = json.dumps(answer).encode()
    writer.write(
        f"HTTP/1.1 {status} OK\r\ncontent-type: application/json\r\n"
        f"content-length: {len(payload)}\r\nconnection: close\r\n\r\n".encode()
        + payload
    )
    await writer.drain()
    writer.close()


async def call(port: int, method: str, path: str, body: dict | None = None) -> dict:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    data = b"" if body is None else json.dumps(body).encode()
    writer.write(f"{method} {path} HTTP/1.1\r\ncontent-length: {len(data)}\r\n\r\n".encode() + data)
    await writer.drain()
    response = await reader.read()
    writer.close()
    return json.loads(response.split(b"\r\n\r\n", 1)[1])


async def main(db_url: str) -> None:
    async with AsyncApp(db_url=db_url, timer_poll_interval=0.05) as app:
        worker = asyncio.create_task(app.serve(threads=4))
        server = await asyncio.start_server(lambda r, w: handle(app, r, w), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            ids = []
            for item in ("tea", "mugs"):
                ids.append((await call(port, "POST", "/orders", {"item": item}))["id"])
            for iid in ids:
                await app.wait(iid, timeout=10)
                print(await call(port, "GET", f"/orders/{iid}"))
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await worker


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as folder:
        url = sys.argv[1] if len(sys.argv) > 1 else f"sqlite:///{Path(folder) / 'service.db'}"
        asyncio.run(main(url))

"""The floor: the least an aiohttp proxy can do per call on this machine. Reads the request, forwards the
bytes to the upstream with a pooled aiohttp client, sends the answer back as it arrives (chunk by chunk
for streams). No parsing, no routing, no logging. Measured beside Downshift so its figures can be read
as "Downshift's own work" = Downshift - relay.

    python -m bench.bare_relay --upstream http://127.0.0.1:9000 --port 9100 --key sk-...
"""

from __future__ import annotations

import argparse
import json
import os

import aiohttp
from aiohttp import web


def build_app(upstream: str, key: str) -> web.Application:
    session: aiohttp.ClientSession | None = None

    async def on_startup(_app: web.Application) -> None:
        nonlocal session
        connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=60)
        session = aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=None), skip_auto_headers=("User-Agent",)
        )

    async def on_cleanup(_app: web.Application) -> None:
        if session is not None:
            await session.close()

    async def relay(request: web.Request) -> web.StreamResponse:
        assert session is not None
        body = await request.read()
        headers = {"Content-Type": "application/json"}
        if request.path.startswith("/v1/messages"):
            headers["x-api-key"] = key
            headers["anthropic-version"] = request.headers.get("anthropic-version", "2023-06-01")
        else:
            headers["Authorization"] = f"Bearer {key}"
        async with session.post(upstream + request.path, data=body, headers=headers) as up:
            ctype = up.headers.get("Content-Type", "application/json")
            if ctype.startswith("text/event-stream"):
                resp = web.StreamResponse(
                    status=up.status, headers={"Content-Type": ctype, "Cache-Control": "no-cache"}
                )
                await resp.prepare(request)
                async for chunk in up.content.iter_any():
                    await resp.write(chunk)
                await resp.write_eof()
                return resp
            data = await up.read()
            return web.Response(status=up.status, body=data, headers={"Content-Type": ctype})

    async def health(_request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_get("/health", health)
    app.router.add_post("/{tail:.*}", relay)
    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bare_relay")
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--key", default="sk-bench")
    args = parser.parse_args(argv)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    print(json.dumps({"ok": True, "pid": os.getpid(), "port": args.port}), flush=True)
    web.run_app(
        build_app(args.upstream.rstrip("/"), args.key),
        host="127.0.0.1",
        port=args.port,
        access_log=None,
        print=None,
        handle_signals=True,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

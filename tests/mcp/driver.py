"""Drives hookhub's MCP server with the official MCP Python SDK, for the integration tests.

The tests (tests/it/mcp.rs) start a real hub, then this script, and talk to it in JSON
lines: one command on stdin, one answer on stdout. The script holds one MCP client
session open across commands, so a test can post events, restart the hub or open the
agent's socket between two tool calls. It asserts nothing itself: it reports what the
SDK returned, as data, and the Rust test decides.

Commands:
  {"op": "connect", "url": URL, "token": T, "mode": "auto"|"legacy"}   Streamable HTTP
  {"op": "connect_stdio", "command": BIN, "url": URL, "token": T}      `hookhub mcp`
  {"op": "list_tools"}
  {"op": "call", "tool": NAME, "args": {...}}
  {"op": "close"}
Answers: {"ok": ...} or {"rpcError": {"code", "message"}} or {"exception": "..."}.
"""

import json
import os
import sys
import time
from contextlib import AsyncExitStack

import anyio
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError


def dump(model):
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


class Driver:
    def __init__(self):
        self.stack = None
        self.client = None

    async def close(self):
        if self.stack is not None:
            await self.stack.aclose()
        self.stack = None
        self.client = None

    async def connect(self, cmd):
        await self.close()
        self.stack = AsyncExitStack()
        if cmd["op"] == "connect":
            http = create_mcp_http_client(headers={"Authorization": f"Bearer {cmd['token']}"})
            await self.stack.enter_async_context(http)
            server = streamable_http_client(cmd["url"], http_client=http)
        else:
            env = {
                "PATH": os.environ.get("PATH", ""),
                "HOOKHUB_URL": cmd["url"],
                "HOOKHUB_AGENT_TOKEN": cmd["token"],
                "RUST_LOG": "warn",
            }
            server = StdioServerParameters(command=cmd["command"], args=["mcp"], env=env)
        self.client = await self.stack.enter_async_context(
            Client(server, mode=cmd.get("mode", "auto"))
        )
        info = self.client.server_info
        return {
            "protocolVersion": self.client.protocol_version,
            "serverName": info.name if info else None,
            "instructions": self.client.instructions,
        }

    async def run(self, cmd):
        op = cmd["op"]
        if op in ("connect", "connect_stdio"):
            return await self.connect(cmd)
        if op == "list_tools":
            return dump(await self.client.list_tools())
        if op == "call":
            started = time.monotonic()
            result = await self.client.call_tool(cmd["tool"], cmd.get("args"))
            out = dump(result)
            out["seconds"] = time.monotonic() - started
            return out
        if op == "close":
            await self.close()
            return {}
        raise ValueError(f"unknown op {op}")


async def main():
    driver = Driver()
    while True:
        line = await anyio.to_thread.run_sync(sys.stdin.readline)
        if not line:
            break
        cmd = json.loads(line)
        try:
            answer = {"ok": await driver.run(cmd)}
        except MCPError as e:
            answer = {"rpcError": {"code": e.error.code, "message": e.error.message}}
        except BaseException as e:  # noqa: BLE001 - reported to the test, which decides
            answer = {"exception": f"{type(e).__name__}: {e}"}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()
        if cmd["op"] == "close":
            break
    await driver.close()


anyio.run(main)

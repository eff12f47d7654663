"""`microshop up`: starts services as children, restarts a crashed one, stops all on Ctrl-C."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import sys

import aiohttp
import pytest

from tests.conftest import StackEnv


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_healthy(port: int, timeout: float = 30) -> dict[str, str]:
    async with aiohttp.ClientSession() as session, asyncio.timeout(timeout):
        while True:
            try:
                async with session.get(f"http://127.0.0.1:{port}/health") as resp:
                    if resp.status == 200:
                        body: dict[str, str] = await resp.json()
                        return body
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)


async def read_until(stream: asyncio.StreamReader, pattern: str, seen: list[str]) -> re.Match[str]:
    async with asyncio.timeout(30):
        while True:
            line = (await stream.readline()).decode()
            if not line:
                raise AssertionError("output ended before " + pattern + ":\n" + "".join(seen))
            seen.append(line)
            if match := re.search(pattern, line):
                return match


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow
async def test_up_restarts_a_crashed_service_and_stops_cleanly(test_env: StackEnv) -> None:
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "microshop",
        "up",
        "--only",
        "relay",
        "--skip-migrate",
        env=test_env.environ(RELAY_PORT=str(port), INTERNAL_API_KEY=""),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert process.stdout is not None
    seen: list[str] = []
    try:
        first = int((await read_until(process.stdout, r"relay \| started \(pid (\d+)\)", seen))[1])
        assert (await wait_healthy(port))["service"] == "relay"

        os.kill(first, signal.SIGKILL)
        await read_until(process.stdout, r"relay \| exited with -9; restarting", seen)
        second = int((await read_until(process.stdout, r"relay \| started \(pid (\d+)\)", seen))[1])
        assert second != first
        await wait_healthy(port)

        process.send_signal(signal.SIGINT)
        async with asyncio.timeout(20):
            rest = (await process.stdout.read()).decode()
            code = await process.wait()
        assert code == 0, "".join(seen) + rest
        assert "relay | stopped" in rest
        assert not alive(second)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()

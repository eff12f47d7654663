"""The API document is exact: schemathesis, every check on, against the running stack.

It generates requests from `/api/openapi.json` (valid ones, and ones the document says
are invalid), sends them through the gateway and checks every answer against the document:
no server error, only documented statuses and content types, every body of the documented
shape (money as decimal strings, every field, `nullable` where null comes), every request
the document allows accepted and every one it forbids refused. A fixed seed and a bounded
number of examples keep it reproducible and short.

Refusals by design are marked in the document itself: an operation whose business rules
refuse some requests its schemas accept (an empty cart ordered, a line over 99 units)
states them as `x-business-rules`, and only for those operations is a 422 an acceptable
answer to valid-looking data.

The requests come from 127.0.0.2 through a small forwarder, so its rate-limit bucket and
its failed logins (thousands of random ones) are not the other e2e tests' (127.0.0.1).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

from tests.e2e.conftest import Stack

SEED = 15
EXAMPLES = 25  # per operation; ~1,000 requests in all
STRANGER = "127.0.0.2"
CASES = re.compile(r"\d+ generated, \d+ passed.*")
BY_DESIGN = ["2xx", "3xx", "401", "403", "404", "409", "422", "429", "5xx"]
"""What a valid-looking request may get where business rules apply (schemathesis' default
for positive data plus 422)."""


@contextlib.asynccontextmanager
async def forwarded_from(source: str, port: int) -> AsyncIterator[int]:
    """A local port whose connections reach 127.0.0.1:`port` from the address `source`."""

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(
            "127.0.0.1", port, local_addr=(source, 0)
        )
        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    async with server:
        yield server.sockets[0].getsockname()[1]


def schemathesis_config(document: dict[str, Any]) -> str:
    """`schemathesis.toml`: 422 is by design where the document states business rules."""
    entries = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if "x-business-rules" in operation:
                entries.append(
                    f"[[operations]]\ninclude-path = {json.dumps(path)}\n"
                    f'include-method = "{method.upper()}"\n'
                    f"checks.positive_data_acceptance.expected-statuses = {json.dumps(BY_DESIGN)}\n"
                )
    return "\n".join(entries)


async def test_schemathesis_finds_nothing_the_document_does_not_say(
    stack: Stack, http: aiohttp.ClientSession, admin: dict[str, str], tmp_path: Path
) -> None:
    document = await (await http.get("/api/openapi.json")).json()
    assert "x-missing" not in document  # every service's part is in
    config = tmp_path / "schemathesis.toml"
    config.write_text(schemathesis_config(document))
    (tmp_path / "openapi.json").write_text(json.dumps(document))
    st = Path(sys.executable).parent / "st"
    async with forwarded_from(STRANGER, stack.ports["gateway"]) as port:
        command = [
            str(st),
            "--config-file",
            str(config),
            "run",
            str(tmp_path / "openapi.json"),
            "--url",
            f"http://127.0.0.1:{port}",
            "--header",
            f"Authorization: {admin['Authorization']}",
            "--checks",
            "all",
            "--phases",
            "examples,coverage,fuzzing",
            "--seed",
            str(SEED),
            "--max-examples",
            str(EXAMPLES),
            "--workers",
            "2",
            "--generation-database",
            "none",
            "--no-color",
        ]
        started = time.monotonic()
        run = await asyncio.create_subprocess_exec(
            *command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=tmp_path
        )
        output = (await run.communicate())[0].decode()
        seconds = time.monotonic() - started
    summary = output[output.find("SUMMARY") :] if "SUMMARY" in output else output[-4000:]
    assert run.returncode == 0, output[-12000:]
    assert "Unsupported regex" not in output, summary  # every pattern is one it can use
    cases = next((m[0] for line in summary.splitlines() if (m := CASES.search(line))), "")
    print(f"schemathesis: {cases} in {seconds:.1f}s")
    # its thousands of failed logins came from another address: this one is not locked out
    login = {"email": stack.admin_email, "password": stack.admin_password}
    assert (await http.post("/api/auth/login", json=login)).status == 200

"""`microshop up`: every service as a child process, prefixed logs, restarts, clean stop."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from typing import TextIO

__all__ = ["Supervisor"]

_COLORS = ("36", "32", "35", "33", "34", "96", "92", "95", "93")
_LEVEL_COLORS = {"WARN": "33", "WARNING": "33", "ERROR": "31", "FATAL": "41", "CRITICAL": "41"}


class Child:
    def __init__(self, name: str, argv: list[str], color: str, env: Mapping[str, str]) -> None:
        self.name = name
        self.argv = argv
        self.color = color
        self.env = env
        self.process: asyncio.subprocess.Process | None = None
        self.started_at = 0.0
        self.restarts = 0


class Supervisor:
    """Runs `services` (`microshop serve NAME` each, `replicas[NAME]` times) until stopped;
    restarts each crashed process on its own.

    Replica i of a service gets `MICROSHOP_REPLICA=i` (it listens on its port + 100 * i)
    and its log lines are prefixed `name.i`; with one replica, just `name`.
    """

    def __init__(
        self,
        services: Sequence[str],
        *,
        replicas: Mapping[str, int] | None = None,
        env: Mapping[str, str] | None = None,
        out: TextIO = sys.stdout,
        max_backoff: float = 30.0,
        stop_timeout: float = 10.0,
    ) -> None:
        self.env = dict(os.environ if env is None else env)
        if not self.env.get("INTERNAL_API_KEY"):
            # services must agree on it, and an unset key never opens /internal
            self.env["INTERNAL_API_KEY"] = secrets.token_urlsafe(32)
        self.env.setdefault("PYTHONUNBUFFERED", "1")
        counts = {name: (replicas or {}).get(name, 1) for name in services}
        labels = [
            (name, i, name if counts[name] == 1 else f"{name}.{i}")
            for name in services
            for i in range(counts[name])
        ]
        width = max((len(label) for _, _, label in labels), default=0)
        self.children = [
            Child(
                label.ljust(width),
                [sys.executable, "-m", "microshop", "serve", name],
                _COLORS[n % len(_COLORS)],
                {**self.env, "MICROSHOP_REPLICA": str(i)},
            )
            for n, (name, i, label) in enumerate(labels)
        ]
        self.out = out
        self.color = out.isatty() and "NO_COLOR" not in self.env
        self.max_backoff = max_backoff
        self.stop_timeout = stop_timeout
        self.stopping = asyncio.Event()

    def print(self, name: str, line: str, color: str = "0") -> None:
        if self.color:
            self.out.write(f"\x1b[{color}m{name} |\x1b[0m {line}\n")
        else:
            self.out.write(f"{name} | {line}\n")
        self.out.flush()

    def render(self, raw: str) -> str:
        """A JSON log line as `time LEVEL message key=value`; anything else as it is."""
        try:
            entry = json.loads(raw)
            message = entry.pop("message")
        except (ValueError, KeyError, TypeError, AttributeError):
            return raw
        level = str(entry.pop("level", "INFO"))
        ts = str(entry.pop("ts", ""))[11:23]
        if entry.pop("logger", None) == "microshop.access":  # the message says it all
            for key in ("method", "route", "status", "duration_ms"):
                entry.pop(key, None)
        for key in ("service", "request_id"):
            entry.pop(key, None)
        extras = " ".join(f"{k}={v}" for k, v in entry.items() if v is not None)
        tag = level.ljust(7)
        if self.color and level in _LEVEL_COLORS:
            tag = f"\x1b[{_LEVEL_COLORS[level]}m{tag}\x1b[0m"
        return f"{ts} {tag} {message}" + (f"  {extras}" if extras else "")

    async def _pump(self, child: Child, stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            text = line.decode(errors="replace").rstrip()
            self.print(child.name, self.render(text), child.color)

    async def _run_child(self, child: Child) -> None:
        backoff = 1.0
        while not self.stopping.is_set():
            child.process = await asyncio.create_subprocess_exec(
                *child.argv,
                env=child.env,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches the supervisor, which stops them
            )
            child.started_at = time.monotonic()
            self.print(child.name, f"started (pid {child.process.pid})", child.color)
            assert child.process.stdout is not None
            await self._pump(child, child.process.stdout)
            code = await child.process.wait()
            if self.stopping.is_set():
                self.print(child.name, f"stopped ({code})", child.color)
                return
            if time.monotonic() - child.started_at > 60:
                backoff = 1.0
            child.restarts += 1
            self.print(child.name, f"exited with {code}; restarting in {backoff:.0f}s", "31")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(backoff):
                    await self.stopping.wait()
            backoff = min(backoff * 2, self.max_backoff)

    async def _stop_all(self) -> None:
        running = [
            c.process
            for c in self.children
            if c.process is not None and c.process.returncode is None
        ]
        for process in running:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(self.stop_timeout):
                await asyncio.gather(*(p.wait() for p in running))
        except TimeoutError:
            for process in running:
                if process.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        process.kill()

    def stop(self) -> None:
        self.stopping.set()

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stop)
        tasks = [asyncio.create_task(self._run_child(c)) for c in self.children]
        await self.stopping.wait()
        self.print(
            "up".ljust(len(self.children[0].name) if self.children else 2),
            "stopping every service ...",
        )
        await self._stop_all()
        await asyncio.gather(*tasks, return_exceptions=True)
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        return 0

"""The demo's scripted agents: a few coding agents working through the real proxy at the same time.

They run on an asyncio loop of their own thread, so the GUI thread never waits on them. A controller
switches the active preset on a schedule (cheap, then plan-high, then premium, and round again), through
the config file exactly as `downshift use` does, so the proxy picks the switch up on its next request.
A persona whose wire API the active preset cannot serve (no gateway for that pair) sits the phase out.
Given the call log's URL, the agents also mark each task finished or abandoned when they are done with
it, as a user would on the Tasks page, so cost per finished task has figures.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson
from sqlalchemy import Engine, text

from app.core.config import Config, ConfigStore
from app.demo.traffic import AIDER, CLAUDE_CODE, PERSONAS, TASK_TITLES, Persona, TaskPlan, made_tool_call
from app.proxy.adapters import adapter_for

log = logging.getLogger(__name__)

# (preset, start as a share of the cycle): a preset switch midway, and a short premium stretch to compare.
SCHEDULE: tuple[tuple[str, float], ...] = (("cheap", 0.0), ("plan-high", 0.5), ("premium", 0.8))
MAX_TURNS = 8


def roles_used(persona: Persona) -> tuple[str, ...]:
    return (
        ("default", "plan", "background")
        if persona is CLAUDE_CODE
        else (("default", "background") if persona is AIDER else ("default",))
    )


def servable(config: Config, persona: Persona) -> bool:
    """True when every role the persona calls lands on a provider the proxy can translate it to."""
    preset = config.active_preset
    if preset is None:
        return False
    for role in roles_used(persona):
        provider = config.providers.get(preset.target_for(role).provider)
        if provider is None or adapter_for(persona.client_api, provider.api) is None:
            return False
    return True


def phase_at(fraction: float) -> str:
    current = SCHEDULE[0][0]
    for preset, start in SCHEDULE:
        if fraction >= start:
            current = preset
    return current


@dataclass
class AgentStats:
    """What the agents saw from their side of the proxy (the call log has the proxy's side)."""

    tasks: int = 0
    calls: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    switches: list[str] = field(default_factory=list)
    by_persona: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)


class ScriptedAgents:
    """`start()` runs the agents in the background until `stop()`; `cycle` is one round of the schedule."""

    def __init__(
        self,
        proxy_url: str,
        token: str,
        config_path: Path,
        *,
        speed: float = 1.0,
        workers: int = 3,
        cycle: float = 150.0,
        seed: int = 11,
        say: Callable[[str], None] | None = None,
        db_url: str | None = None,
    ) -> None:
        self.proxy_url, self.token = proxy_url, token
        self.db_url = db_url
        self._engine: Engine | None = None
        self.store = ConfigStore(config_path)
        self.speed = max(0.01, speed)
        self.workers = workers
        self.cycle = cycle
        self.stats = AgentStats()
        self.paused_by: str | None = None  # the preset a user picked by hand, which paused the schedule
        self.error: BaseException | None = None
        self._say = say or (lambda _text: None)
        self._rng = random.Random(seed)
        self._numbers = itertools.count(1)
        self._rotation = itertools.cycle(PERSONAS)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._drain = 5.0
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="downshift-demo-agents", daemon=True)

    # ------------------------------------------------------------------------------------------ lifecycle

    def start(self) -> ScriptedAgents:
        self._thread.start()
        self._ready.wait(5)
        return self

    def stop(self, drain: float = 5.0) -> None:
        """No new calls; calls in flight get `drain` seconds to finish, then are cancelled."""
        if self._thread.ident is None:
            return
        self._drain = drain
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None and not loop.is_closed():
            loop.call_soon_threadsafe(stopping.set)
        self._thread.join(drain + 5)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main())
        except BaseException as exc:  # reported to whoever stops us
            log.exception("demo agents failed")
            self.error = exc
        finally:
            self._ready.set()
            loop.close()

    async def _main(self) -> None:
        self._stopping = asyncio.Event()
        self._ready.set()
        timeout = httpx.Timeout(120.0, connect=5.0)
        async with httpx.AsyncClient(base_url=self.proxy_url, timeout=timeout) as client:
            if not await self._wait_for_proxy(client):
                return
            controller = asyncio.create_task(self._controller(), name="demo-presets")
            workers = [
                asyncio.create_task(self._worker(client, i), name=f"demo-agent-{i}")
                for i in range(self.workers)
            ]
            await self._stopping.wait()
            controller.cancel()
            _done, pending = await asyncio.wait(workers, timeout=self._drain)
            for task in pending:
                task.cancel()
            await asyncio.gather(controller, *workers, return_exceptions=True)
        if self._engine is not None:
            self._engine.dispose()

    async def _wait_for_proxy(self, client: httpx.AsyncClient, timeout: float = 60.0) -> bool:
        """Poll /health until the proxy answers (the GUI starts its proxy a moment after launch)."""
        assert self._stopping is not None
        deadline = time.monotonic() + timeout
        while not self._stopping.is_set():
            try:
                if (await client.get("/health", timeout=1.0)).status_code == 200:
                    return True
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"no Downshift proxy answered on {self.proxy_url} within {timeout:g} s")
            await asyncio.sleep(0.2)
        return False

    async def _sleep(self, seconds: float) -> bool:
        """Sleep `seconds` of demo time; False when the demo is stopping."""
        assert self._stopping is not None
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds / self.speed)
        except TimeoutError:
            return True
        return False

    # ------------------------------------------------------------------------------------------ presets

    async def _controller(self) -> None:
        """Moves the preset only when the schedule's phase changes. A preset picked by hand (tray, window,
        `downshift use`) is the user's: the schedule pauses for the rest of the demo and says so, instead
        of switching it back a quarter second later."""
        started = time.monotonic()
        phase: str | None = None  # the schedule's phase last acted on
        applied: str | None = None  # the preset the schedule last left active
        while True:
            active = self.store.current().active
            if self.paused_by is None and applied is not None and active != applied:
                self.paused_by = active
                self._say(
                    f"preset switched by hand to {active}: the demo's schedule pauses, your choice stays"
                )
            if self.paused_by is None:
                fraction = (((time.monotonic() - started) * self.speed) % self.cycle) / self.cycle
                wanted = phase_at(fraction)
                if wanted != phase:
                    phase = wanted
                    if active != wanted and wanted in self.store.current().presets:
                        await asyncio.to_thread(self.store.update, _activate(wanted))
                        self.stats.switches.append(wanted)
                        self._say(f"preset switched to {wanted}")
                    applied = self.store.current().active
            if not await self._sleep(0.25):
                return

    # ------------------------------------------------------------------------------------------ agents

    def _next_task(self) -> TaskPlan | None:
        config = self.store.current()
        for _ in range(len(PERSONAS)):
            persona = next(self._rotation)
            if servable(config, persona):
                number = next(self._numbers)
                stream = persona is not AIDER or number % 3 != 0  # aider sometimes runs with --no-stream
                return TaskPlan(persona, number, TASK_TITLES[number % len(TASK_TITLES)], stream)
        return None

    async def _worker(self, client: httpx.AsyncClient, index: int) -> None:
        if not await self._sleep(index * 0.7):  # staggered start, like people opening terminals
            return
        while True:
            plan = self._next_task()
            if plan is not None:
                self.stats.tasks += 1
                self.stats.by_persona[plan.persona.name] += 1
                self._say(
                    f"task {plan.label} ({plan.persona.client_api}{', streamed' if plan.stream else ''})"
                )
                outcome = await self._run_task(client, plan)
                if outcome is not None and self.db_url:
                    self.stats.outcomes[outcome] += 1
                    if not await self._close_task(plan, outcome):
                        return
            if not await self._sleep(self._rng.uniform(1.5, 4.0)):
                return

    async def _run_task(self, client: httpx.AsyncClient, plan: TaskPlan) -> str | None:
        """Run the task's turns; "finished" when the model answered, "abandoned" when it broke, None when stopped."""
        headers = plan.headers(self.token)
        if plan.persona is CLAUDE_CODE:
            await self._send(client, plan, plan.title_body(), headers)
        outcome = "abandoned"  # MAX_TURNS without an answer: the user gives up
        for turn in range(MAX_TURNS):
            if not servable(self.store.current(), plan.persona):
                return "abandoned"  # the preset changed under a persona it cannot serve: the user stops it
            role = "plan" if plan.persona is CLAUDE_CODE and turn == 0 else "default"
            status, raw = await self._send(client, plan, plan.body(turn, role), headers)
            if status != 200 or not raw:
                outcome = "abandoned"
                break
            if not made_tool_call(plan.persona.client_api, raw):
                outcome = (
                    "abandoned" if b'"error"' in raw[-600:] else "finished"
                )  # a stream cut short ends in an error event
                break
            if not await self._sleep(self._rng.uniform(0.3, 2.0)):  # the agent runs the tool
                return None
        if plan.persona is AIDER and outcome == "finished":  # aider's weak model writes the commit message
            message = {
                "model": "background",
                "stream": False,
                "max_tokens": 256,
                "messages": [
                    {
                        "role": "system",
                        "content": "Write a one-line conventional commit message for this diff.",
                    },
                    {"role": "user", "content": f"diff --git a/app/proxy/sse.py ...\n# {plan.title}"},
                ],
            }
            await self._send(client, plan, orjson.dumps(message), headers)
        return outcome

    async def _close_task(self, plan: TaskPlan, outcome: str) -> bool:
        """Mark the task as the user would, once the log writer has stored it; False when stopping."""
        for _ in range(5):
            if not await self._sleep(1.0):
                return False
            if await asyncio.to_thread(self._set_outcome, plan.task_key, outcome):
                return True
        log.info("demo task %s never reached the log", plan.label)
        return True

    def _set_outcome(self, key: str, outcome: str) -> bool:
        from app.core.queries.tasks import set_outcome
        from app.core.storage.db import create_db_engine

        if self._engine is None:
            assert self.db_url is not None
            self._engine = create_db_engine(self.db_url)
        with self._engine.connect() as conn:
            task_id = conn.execute(
                text("SELECT id FROM tasks WHERE key = :key ORDER BY id DESC LIMIT 1"), {"key": key}
            ).scalar()
        if task_id is None:
            return False
        set_outcome(self._engine, int(task_id), outcome)
        return True

    async def _send(
        self, client: httpx.AsyncClient, plan: TaskPlan, body: bytes, headers: dict[str, str]
    ) -> tuple[int, bytes]:
        self.stats.calls += 1
        try:
            async with client.stream("POST", plan.persona.path, content=body, headers=headers) as resp:
                raw = await resp.aread()
        except httpx.HTTPError as exc:
            self.stats.statuses[0] += 1
            log.info("demo call failed: %s", exc)
            return 0, b""
        self.stats.statuses[resp.status_code] += 1
        return resp.status_code, raw


def _activate(preset: str) -> Callable[[Config], Config]:
    """A config update that makes `preset` the active one."""
    return lambda config: config.with_active(preset)

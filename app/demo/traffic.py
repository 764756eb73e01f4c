"""What the demo's agents send: request bodies and headers in the shape real agents use.

Three personas, one per wire API the proxy serves: an aider-like client (chat completions, a task named
with `X-Downshift-Task`), a Claude Code-like one (Messages, its session header, a background title call
and a planning turn) and a Codex-like one (Responses, `session-id`). Bodies come from the shared agent
traffic factories, so they carry a real system prompt, tool schemas and a history that grows each turn.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson

from app import __version__
from app.testing.agent_traffic import anthropic_agent_request, openai_agent_request


@dataclass(frozen=True)
class Persona:
    name: str
    client_api: str  # openai | anthropic | responses: the proxy endpoint it calls
    path: str
    user_agent: str
    label_prefix: str


AIDER = Persona("aider", "openai", "/v1/chat/completions", "litellm/1.77 (demo)", "aider")
CLAUDE_CODE = Persona(
    "claude-code", "anthropic", "/v1/messages", "claude-cli/2.1.197 (external, demo)", "claude"
)
CODEX = Persona("codex", "responses", "/v1/responses", "codex_exec/0.169.0 (demo)", "codex")
PERSONAS = (AIDER, CLAUDE_CODE, CODEX)

TASK_TITLES = (
    "fix the SSE parser's last event",
    "retry 429s with backoff",
    "config errors name the key",
    "cheaper request logging",
    "add a --json flag to stats",
    "flaky websocket test",
)


@dataclass
class TaskPlan:
    """One unit of agent work: the persona, a seed for its conversation, and an id its headers carry."""

    persona: Persona
    number: int
    title: str
    stream: bool
    session: str = field(default_factory=lambda: str(uuid.uuid4()))

    @property
    def label(self) -> str:
        return f"{self.persona.label_prefix}-{self.number}: {self.title}"

    @property
    def task_key(self) -> str:
        """The key the proxy files this task's calls under (see app.core.analytics.tasks)."""
        return f"task:{self.label}" if self.persona is AIDER else f"session:{self.session}"

    def headers(self, token: str) -> dict[str, str]:
        headers = {
            "Content-Type": "application/json",
            "User-Agent": self.persona.user_agent,
            "X-Downshift-Demo": __version__,
        }
        if self.persona is CLAUDE_CODE:
            headers |= {
                "x-api-key": token,
                "anthropic-version": "2023-06-01",
                "anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14",
                "x-claude-code-session-id": self.session,
            }
        elif self.persona is CODEX:
            headers |= {
                "Authorization": f"Bearer {token}",
                "session-id": self.session,
                "thread-id": self.session,
                "originator": "codex_exec",
            }
        else:
            headers |= {"Authorization": f"Bearer {token}", "X-Downshift-Task": self.label}
        return headers

    def body(self, turn: int, role: str = "default") -> bytes:
        """The request for `turn` (0 = the first): history of `turn` tool rounds, model = a Downshift role."""
        size = 8 + 5 * turn
        if self.persona is CLAUDE_CODE:
            data = anthropic_agent_request(
                size_kb=size + 14, tools=12, turns=turn, stream=self.stream, seed=self.number, model=role
            )
            user_id = orjson.dumps(
                {"device_id": "demo", "account_uuid": "", "session_id": self.session}
            ).decode()
            data["metadata"] = {"user_id": user_id}
            data["max_tokens"] = 32000
        else:
            data = openai_agent_request(
                size_kb=size, tools=10, turns=turn, stream=self.stream, seed=self.number, model=role
            )
            if self.persona is CODEX:
                data = responses_body(data, self.session)
        return orjson.dumps(data)

    def title_body(self) -> bytes:
        """Claude Code's side call that names the session: small, non-streamed, the `background` role."""
        return orjson.dumps(
            {
                "model": "background",
                "max_tokens": 512,
                "stream": False,
                "system": [
                    {"type": "text", "text": "Summarize this coding conversation in under 50 characters."}
                ],
                "messages": [{"role": "user", "content": f"Please {self.title}."}],
                "metadata": {"user_id": orjson.dumps({"session_id": self.session}).decode()},
            }
        )


def responses_body(chat: dict[str, Any], session: str) -> dict[str, Any]:
    """A Codex-style Responses request carrying the same conversation as a chat-completions body."""
    items: list[dict[str, Any]] = []
    for message in chat["messages"]:
        role = message["role"]
        if role == "system":
            items.append(_message("developer", "input_text", message["content"]))
        elif role == "user":
            items.append(_message("user", "input_text", message["content"]))
        elif role == "assistant":
            if message.get("content"):
                items.append(_message("assistant", "output_text", message["content"]))
            for call in message.get("tool_calls") or ():
                items.append(
                    {
                        "type": "function_call",
                        "call_id": call["id"],
                        "name": call["function"]["name"],
                        "arguments": call["function"]["arguments"],
                    }
                )
        elif role == "tool":
            items.append(
                {
                    "type": "function_call_output",
                    "call_id": message["tool_call_id"],
                    "output": message["content"],
                }
            )
    tools = [
        {
            "type": "function",
            "name": t["function"]["name"],
            "description": t["function"]["description"],
            "strict": False,
            "parameters": t["function"]["parameters"],
        }
        for t in chat.get("tools", ())
    ]
    return {
        "model": chat["model"],
        "input": items,
        "tools": tools,
        "tool_choice": "auto",
        "parallel_tool_calls": False,
        "reasoning": {"summary": "auto"},
        "store": False,
        "stream": bool(chat.get("stream")),
        "include": ["reasoning.encrypted_content"],
        "prompt_cache_key": session,
    }


def _message(role: str, part: str, text: str) -> dict[str, Any]:
    return {"type": "message", "role": role, "content": [{"type": part, "text": text}]}


def made_tool_call(api: str, raw: bytes) -> bool:
    """Whether an answer (whole or streamed) asked for a tool, so the agent runs it and goes on."""
    markers = {
        "openai": (b'"tool_calls"',),
        "anthropic": (b'"tool_use"',),
        "responses": (b'"function_call"',),
    }
    return any(marker in raw for marker in markers[api])

"""A system message inside `messages` (Claude Code's mid-conversation-tool-changes beta) is carried in place."""

from app.proxy.profiles import profile_for
from app.proxy.translate.anthropic import anthropic_to_openai_request


def test_mid_conversation_system_message_becomes_a_system_reminder_turn() -> None:
    body = {
        "model": "x",
        "max_tokens": 10,
        "system": "top",
        "messages": [
            {"role": "user", "content": "first"},
            {"role": "user", "content": [{"type": "text", "text": "second"}]},
            {
                "role": "system",
                "content": [{"type": "text", "text": "env: linux", "cache_control": {"type": "ephemeral"}}],
            },
        ],
    }
    out = anthropic_to_openai_request(body, model="m", profile=profile_for("openrouter", "openai"))
    assert [m["role"] for m in out["messages"]] == ["system", "user", "user", "user"]
    assert out["messages"][-1]["content"] == "<system-reminder>\nenv: linux\n</system-reminder>"

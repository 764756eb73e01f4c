"""OpenAI Responses API <-> chat completions: the public surface of the three translator modules.

Request: `responses_to_chat_request(body, model=...)` -> (chat body, ResponsesContext).
Way back: `chat_to_responses_response(resp, ctx)` for a whole answer, `ChatToResponsesStream(ctx)` fed
chat chunk dicts for a streamed one, `chat_error_to_responses(status, body)` for an upstream error.
"""

from app.proxy.translate.responses_output import chat_error_to_responses, chat_to_responses_response
from app.proxy.translate.responses_request import (
    FORWARDED,
    HOSTED_TOOLS,
    IGNORED,
    Lookup,
    ResponsesContext,
    responses_to_chat_request,
)
from app.proxy.translate.responses_stream import ChatToResponsesStream
from app.proxy.translate.responses_tools import ToolOrigin, chat_tool_name

__all__ = [
    "FORWARDED",
    "HOSTED_TOOLS",
    "IGNORED",
    "ChatToResponsesStream",
    "Lookup",
    "ResponsesContext",
    "ToolOrigin",
    "chat_error_to_responses",
    "chat_to_responses_response",
    "chat_tool_name",
    "responses_to_chat_request",
]

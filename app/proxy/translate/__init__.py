"""Pure translation between wire APIs. OpenAI chat completions is the pivot format.

Requests and responses are plain dicts in, dicts out. Stream translators are small state machines:
`feed(upstream_event_dict) -> list[output_event_dict]`, `finish() -> list[...]`, `error(...) -> list[...]`;
the caller encodes their output with `app.proxy.sse` (OpenAI chunks with `encode_data`, Anthropic and
Responses events with `encode_named`). Nothing here does I/O.
"""

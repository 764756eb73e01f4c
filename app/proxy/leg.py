"""One leg of a proxied call: one target's attempt at serving it, once the provider's headers are in.

The pipeline builds a `Leg` per attempt that got an answer (status < 400), and the relays (whole,
streamed, counted) and the accounting read everything they need from it, instead of a long list of
parameters passed from hand to hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from app.core.config import Config, Provider, Target
from app.core.records import Attempt, CallRecord
from app.proxy.adapters import Adapter, Context, StreamTranslator
from app.proxy.observe import Observer

# name -> parameters schema (None: a tool whose arguments cannot be checked), see app.core.toolcheck
Declared = dict[str, dict[str, Any] | None]


@dataclass(slots=True, eq=False)
class Leg:
    """What one attempt carries from the request to its log row."""

    request: web.Request  # the client's request (its headers, and the connection the answer goes to)
    rec: CallRecord  # the call's log row, filled in as the answer goes by
    config: Config  # the call's config, pinned when it came in
    target: Target
    provider: Provider
    adapter: Adapter  # client API <-> the provider's API
    ctx: Context  # what the way back needs to know about the request
    upstream_body: dict[str, Any]  # the request as the provider got it
    payload_len: int  # its size in bytes: the input estimate when the provider reports no usage
    attempt: Attempt  # this leg's entry in the call's fallback chain
    resp: aiohttp.ClientResponse  # the provider's answer, headers read, body not yet
    observer: Observer  # usage, tool calls and text, read in the provider's format
    known: tuple[bytes, ...]  # secret values masked in everything sent back (app.core.redact.scrub_known)
    translator: StreamTranslator | None = None  # a streamed answer in another API's events
    declared: Declared | None = None  # the request's tools, read once (None: not read yet)
    # output tokens counted off the event loop in an answer without (complete) usage (accounting.count_seen);
    # None: not counted (settle counts, or guesses, itself)
    seen_tokens: int | None = None

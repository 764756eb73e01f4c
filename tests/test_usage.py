"""Usage normalisation: every provider shape lands in the same disjoint buckets."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.core.usage import StreamUsage, Usage, normalize_anthropic, normalize_openai


def test_openai_prompt_tokens_include_cached() -> None:
    usage = normalize_openai(
        {
            "prompt_tokens": 2006,
            "completion_tokens": 300,
            "total_tokens": 2306,
            "prompt_tokens_details": {"cached_tokens": 1920, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 192},
        }
    )
    assert usage == Usage(input=86, cache_read=1920, output=300, reasoning=192)
    assert usage.prompt == 2006 and usage.total == 2306


def test_openai_responses_api_shape() -> None:
    usage = normalize_openai(
        {
            "input_tokens": 5000,
            "input_tokens_details": {"cached_tokens": 4096},
            "output_tokens": 800,
            "output_tokens_details": {"reasoning_tokens": 512},
            "total_tokens": 5800,
        }
    )
    assert (usage.input, usage.cache_read, usage.output, usage.reasoning) == (904, 4096, 800, 512)


def test_openrouter_cache_write_and_cost() -> None:
    usage = normalize_openai(
        {
            "prompt_tokens": 194,
            "completion_tokens": 2,
            "total_tokens": 196,
            "prompt_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 100, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0},
            "cost": 0.95,
            "cost_details": {"upstream_inference_cost": 19},
        }
    )
    assert (usage.input, usage.cache_write, usage.cache_read, usage.output) == (94, 100, 0, 2)
    # OpenRouter's documented example: upstream_inference_cost is set only with the user's own provider key
    # (BYOK), where `cost` is OpenRouter's fee and the provider bills the upstream cost on top
    assert usage.cost == pytest.approx(0.95 + 19)
    assert usage.cost_details == {"upstream_inference_cost": 19}


@pytest.mark.parametrize(
    ("is_byok", "upstream", "expected"),
    [
        (True, 0.002, 0.0001 + 0.002),  # BYOK: fee + the provider's charge
        (False, 0.0009, 0.0001),  # not BYOK: the upstream share is already inside `cost`
        (False, None, 0.0001),  # not BYOK, as OpenRouter sends it: upstream_inference_cost null
        (True, None, 0.0001),  # BYOK on a free upstream
    ],
)
def test_openrouter_byok_cost_is_fee_plus_upstream(
    is_byok: bool, upstream: float | None, expected: float
) -> None:
    usage = normalize_openai(
        {
            "prompt_tokens": 10,
            "completion_tokens": 2,
            "cost": 0.0001,
            "is_byok": is_byok,
            "cost_details": {"upstream_inference_cost": upstream},
        }
    )
    assert usage.cost == pytest.approx(expected)


def test_deepseek_hit_and_miss() -> None:
    usage = normalize_openai(
        {
            "prompt_tokens": 1200,
            "completion_tokens": 50,
            "total_tokens": 1250,
            "prompt_cache_hit_tokens": 1024,
            "prompt_cache_miss_tokens": 176,
        }
    )
    assert (usage.input, usage.cache_read) == (176, 1024)


def test_moonshot_top_level_cached_tokens() -> None:
    usage = normalize_openai(
        {"prompt_tokens": 900, "completion_tokens": 10, "total_tokens": 910, "cached_tokens": 768}
    )
    assert (usage.input, usage.cache_read) == (132, 768)


def test_xai_reasoning_outside_completion_detected_from_total() -> None:
    raw = {
        "prompt_tokens": 10120,
        "completion_tokens": 1499,
        "total_tokens": 14428,
        "prompt_tokens_details": {"cached_tokens": 128},
        "completion_tokens_details": {"reasoning_tokens": 2809},
        "cost_in_usd_ticks": 232856000,
    }
    usage = normalize_openai(raw)
    assert (usage.input, usage.cache_read, usage.output, usage.reasoning) == (9992, 128, 4308, 2809)
    assert usage.total == 14428
    assert usage.cost == 0.0232856


def test_xai_hint_without_total() -> None:
    raw = {"prompt_tokens": 20, "completion_tokens": 7, "completion_tokens_details": {"reasoning_tokens": 3}}
    assert normalize_openai(raw).output == 7
    assert normalize_openai(raw, "xai").output == 10


def test_reasoning_larger_than_completion_means_outside() -> None:
    raw = {"prompt_tokens": 21, "completion_tokens": 0, "completion_tokens_details": {"reasoning_tokens": 60}}
    usage = normalize_openai(raw)
    assert (usage.output, usage.reasoning) == (60, 60)


def test_anthropic_input_excludes_cache() -> None:
    usage = normalize_anthropic(
        {
            "input_tokens": 12,
            "cache_creation_input_tokens": 3000,
            "cache_read_input_tokens": 20000,
            "cache_creation": {"ephemeral_5m_input_tokens": 1000, "ephemeral_1h_input_tokens": 2000},
            "output_tokens": 400,
            "service_tier": "standard",
        }
    )
    assert usage == Usage(input=12, cache_read=20000, cache_write=1000, cache_write_1h=2000, output=400)
    assert usage.prompt == 23012


def test_anthropic_without_ttl_split_is_five_minute() -> None:
    usage = normalize_anthropic({"input_tokens": 5, "cache_creation_input_tokens": 700, "output_tokens": 1})
    assert (usage.cache_write, usage.cache_write_1h) == (700, 0)


def test_empty_and_missing() -> None:
    assert normalize_openai(None) == Usage()
    assert normalize_anthropic({}) == Usage()
    assert normalize_openai({"prompt_tokens": None, "completion_tokens": "12"}).output == 12


@given(
    cached=st.integers(0, 10**6),
    fresh=st.integers(0, 10**6),
    written=st.integers(0, 10**6),
    completion=st.integers(0, 10**6),
)
def test_openai_buckets_add_up_to_prompt(cached: int, fresh: int, written: int, completion: int) -> None:
    prompt = cached + fresh + written
    usage = normalize_openai(
        {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": cached, "cache_write_tokens": written},
        }
    )
    assert usage.prompt == prompt
    assert usage.input == fresh
    assert usage.total == prompt + completion


# --------------------------------------------------------------------------- streams


def test_anthropic_stream_start_then_cumulative_delta() -> None:
    acc = StreamUsage("anthropic")
    acc.feed(
        {
            "type": "message_start",
            "message": {
                "id": "msg_1",
                "usage": {
                    "input_tokens": 4,
                    "cache_creation_input_tokens": 1500,
                    "cache_read_input_tokens": 30000,
                    "cache_creation": {"ephemeral_5m_input_tokens": 1500, "ephemeral_1h_input_tokens": 0},
                    "output_tokens": 1,
                },
            },
        }
    )
    acc.feed({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "hi"}})
    acc.feed({"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 87}})
    acc.feed({"type": "message_delta", "delta": {}, "usage": {"output_tokens": 120}})
    acc.feed({"type": "message_stop"})
    assert acc.result() == Usage(input=4, cache_read=30000, cache_write=1500, output=120)


def test_anthropic_delta_may_update_input_counts() -> None:
    acc = StreamUsage("anthropic")
    acc.feed({"type": "message_start", "message": {"usage": {"input_tokens": 0, "output_tokens": 0}}})
    acc.feed(
        {
            "type": "message_delta",
            "usage": {
                "input_tokens": 2100,
                "cache_read_input_tokens": 512,
                "cache_creation_input_tokens": None,
                "output_tokens": 64,
            },
        }
    )
    assert acc.result() == Usage(input=2100, cache_read=512, output=64)


def test_openai_stream_final_usage_chunk() -> None:
    acc = StreamUsage("openai")
    acc.feed({"choices": [{"index": 0, "delta": {"content": "Hel"}}], "usage": None})
    acc.feed({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": None})
    assert acc.result() is None
    acc.feed(
        {
            "choices": [],
            "usage": {
                "prompt_tokens": 50,
                "completion_tokens": 5,
                "prompt_tokens_details": {"cached_tokens": 32},
            },
        }
    )
    assert acc.result() == Usage(input=18, cache_read=32, output=5)


def test_groq_x_groq_usage() -> None:
    acc = StreamUsage("openai")
    acc.feed({"choices": [{"delta": {"content": "x"}}]})
    acc.feed(
        {
            "choices": [{"delta": {}, "finish_reason": "stop"}],
            "x_groq": {
                "id": "req_1",
                "usage": {"prompt_tokens": 30, "completion_tokens": 9, "total_tokens": 39},
            },
        }
    )
    assert acc.result() == Usage(input=30, output=9)


def test_moonshot_usage_on_choice() -> None:
    acc = StreamUsage("openai")
    acc.feed(
        {
            "choices": [
                {
                    "index": 0,
                    "delta": {},
                    "finish_reason": "stop",
                    "usage": {
                        "prompt_tokens": 100,
                        "completion_tokens": 20,
                        "total_tokens": 120,
                        "cached_tokens": 64,
                    },
                }
            ]
        }
    )
    assert acc.result() == Usage(input=36, cache_read=64, output=20)


def test_cumulative_usage_on_every_chunk_keeps_the_last() -> None:
    acc = StreamUsage("openai")
    for n in range(1, 6):
        acc.feed(
            {"choices": [{"delta": {"content": "a"}}], "usage": {"prompt_tokens": 10, "completion_tokens": n}}
        )
    assert acc.result() == Usage(input=10, output=5)


def test_openrouter_stream_cost() -> None:
    acc = StreamUsage("openai")
    acc.feed(
        {
            "object": "chat.completion.chunk",
            "choices": [],
            "usage": {"prompt_tokens": 194, "completion_tokens": 2, "cost": 0.00012},
        }
    )
    result = acc.result()
    assert result is not None and result.cost == 0.00012
    assert acc.raw() == {"prompt_tokens": 194, "completion_tokens": 2, "cost": 0.00012}


def test_responses_stream_completed_event() -> None:
    acc = StreamUsage("responses")
    acc.feed({"type": "response.created", "response": {"id": "resp_1", "usage": None}})
    acc.feed({"type": "response.output_text.delta", "delta": "hi"})
    acc.feed(
        {
            "type": "response.completed",
            "response": {
                "id": "resp_1",
                "usage": {
                    "input_tokens": 300,
                    "input_tokens_details": {"cached_tokens": 256},
                    "output_tokens": 40,
                    "output_tokens_details": {"reasoning_tokens": 16},
                    "total_tokens": 340,
                },
            },
        }
    )
    assert acc.result() == Usage(input=44, cache_read=256, output=40, reasoning=16)


def test_observer_reads_usage_outside_the_top_level_of_a_whole_answer() -> None:
    """A whole answer with no top-level usage but one on its choice or in x_groq (as their streams carry it)."""
    from app.proxy.observe import OpenAIObserver

    on_choice = {
        "choices": [
            {
                "index": 0,
                "message": {"content": "ok"},
                "finish_reason": "stop",
                "usage": {"prompt_tokens": 10, "completion_tokens": 2},
            }
        ]
    }
    in_groq = {
        "choices": [{"index": 0, "message": {"content": "ok"}, "finish_reason": "stop"}],
        "x_groq": {"id": "req_1", "usage": {"prompt_tokens": 10, "completion_tokens": 2}},
    }
    for data in (on_choice, in_groq):
        observer = OpenAIObserver()
        observer.on_response(data)
        assert observer.usage_complete and normalize_openai(observer.usage).total == 12
    bare = OpenAIObserver()
    bare.on_response({"choices": [{"index": 0, "message": {"content": "ok"}, "finish_reason": "stop"}]})
    assert not bare.usage_complete

"""Tool-call checks: verdicts, text-form detection per model family, extraction and failed results."""

from __future__ import annotations

import time

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.core import toolcheck
from app.core.toolcheck import (
    CallCheck,
    ToolCall,
    calls_anthropic,
    calls_openai,
    calls_responses,
    check_calls,
    declared_anthropic,
    declared_openai,
    detect_text_form,
    failed_results,
    text_anthropic,
    validator_for,
)

BASH = {
    "type": "object",
    "properties": {
        "command": {"type": "string"},
        "timeout": {"type": "number", "maximum": 600000},
        "run_in_background": {"type": "boolean"},
    },
    "required": ["command"],
    "additionalProperties": False,
    "$schema": "http://json-schema.org/draft-07/schema#",
}
TODO = {
    "type": "object",
    "properties": {
        "todos": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "content": {"type": "string", "minLength": 1},
                    "status": {"type": "string", "enum": ["pending", "in_progress", "completed"]},
                },
                "required": ["content", "status"],
            },
        }
    },
    "required": ["todos"],
}
FETCH = {"type": "object", "properties": {"url": {"type": "string", "format": "uri"}}, "required": ["url"]}
DECLARED = {"Bash": BASH, "TodoWrite": TODO, "WebFetch": FETCH, "web_search": None}


def one(calls: list[ToolCall], content: str | None = None) -> CallCheck:
    results = check_calls(DECLARED, calls, content)
    assert len(results) == 1
    return results[0]


# --------------------------------------------------------------------------- structured verdicts


def test_valid_call_is_ok() -> None:
    assert one([ToolCall("c1", "Bash", '{"command": "ls -la"}')]) == CallCheck("ok", "Bash", "c1")


def test_truncated_json_is_invalid_json() -> None:
    result = one([ToolCall("c1", "Bash", '{"command": "ls')])
    assert result.kind == "invalid_json"
    assert result.call_id == "c1"
    assert result.detail


def test_unknown_tool() -> None:
    result = one([ToolCall("c2", "bash_exec", '{"command": "ls"}')])
    assert (result.kind, result.name) == ("unknown_tool", "bash_exec")
    assert "bash_exec" in result.detail


def test_missing_required_field_names_it() -> None:
    result = one([ToolCall("c3", "Bash", '{"timeout": 5}')])
    assert result.kind == "schema"
    assert "command" in result.detail
    assert "required" in result.detail


def test_wrong_type_names_the_field() -> None:
    result = one([ToolCall("c4", "Bash", '{"command": ["ls"]}')])
    assert result.kind == "schema"
    assert "command" in result.detail and "string" in result.detail


def test_nested_enum_violation_names_the_path() -> None:
    args = orjson.dumps(
        {"todos": [{"content": "a", "status": "pending"}, {"content": "b", "status": "done"}]}
    )
    result = one([ToolCall("c5", "TodoWrite", args.decode())])
    assert result.kind == "schema"
    assert "todos.1.status" in result.detail


def test_additional_property_is_a_schema_failure() -> None:
    assert one([ToolCall("c6", "Bash", '{"command": "ls", "cwd": "/"}')]).kind == "schema"


def test_double_encoded_arguments() -> None:
    result = one([ToolCall("c7", "Bash", orjson.dumps('{"command": "ls"}').decode())])
    assert result.kind == "schema"
    assert "double-encoded" in result.detail


def test_non_object_arguments() -> None:
    assert one([ToolCall("c8", "Bash", "[1, 2]")]).kind == "schema"


def test_empty_arguments_mean_no_arguments() -> None:
    # a no-parameter call is streamed with no argument bytes by several providers
    assert one([ToolCall("c9", "Bash", "")]).kind == "schema"  # but Bash requires `command`
    assert (
        check_calls(
            {"ExitPlanMode": {"type": "object", "properties": {}}}, [ToolCall("x", "ExitPlanMode", "")]
        )[0].kind
        == "ok"
    )


def test_formats_are_not_enforced() -> None:
    assert one([ToolCall("c10", "WebFetch", '{"url": "docs/readme"}')]).kind == "ok"


def test_tool_without_schema_is_only_name_checked() -> None:
    assert one([ToolCall("c11", "web_search", '{"anything": 1}')]).kind == "ok"


def test_nothing_declared_and_no_calls_is_no_work() -> None:
    assert check_calls({}, [], "<tool_call>{}</tool_call>") == []


def test_broken_declared_schema_never_blames_the_model() -> None:
    broken = {"type": "object", "properties": {"a": {"type": "no-such-type"}}}
    verdict = check_calls({"t": broken}, [ToolCall("1", "t", '{"a": 1}')])[0]
    assert verdict.kind == "unchecked" and verdict.detail.startswith("not checked")


def test_2020_12_schema_with_defs_is_checked() -> None:
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {"n": {"$ref": "#/$defs/count"}},
        "$defs": {"count": {"type": "integer", "minimum": 1}},
        "required": ["n"],
    }
    assert check_calls({"t": schema}, [ToolCall("1", "t", '{"n": 0}')])[0].kind == "schema"
    assert check_calls({"t": schema}, [ToolCall("1", "t", '{"n": 3}')])[0].kind == "ok"


def test_validators_are_cached_by_canonical_schema() -> None:
    reordered = dict(reversed(list(BASH.items())))
    assert validator_for(BASH) is validator_for(reordered)


def test_forty_tools_compile_once() -> None:
    schemas = {
        f"tool{i}": {"type": "object", "properties": {f"p{i}": {"type": "string"}}, "required": [f"p{i}"]}
        for i in range(40)
    }
    calls = [ToolCall(str(i), f"tool{i}", orjson.dumps({f"p{i}": "x"}).decode()) for i in range(40)]
    check_calls(schemas, calls)  # warm: compiles each schema once
    start = time.perf_counter()
    for _ in range(20):
        assert all(r.kind == "ok" for r in check_calls(schemas, calls))
    per_call_us = (time.perf_counter() - start) / (20 * 40) * 1e6
    assert per_call_us < 200, per_call_us  # a recompile costs ~1 ms per schema


@given(st.text(max_size=200))
def test_arbitrary_argument_text_never_raises(text: str) -> None:
    result = check_calls(DECLARED, [ToolCall("h", "Bash", text)])[0]
    assert result.kind in ("ok", "invalid_json", "schema")


# --------------------------------------------------------------------------- text-form calls

TEXT_FORMS = [
    ("hermes", 'Sure.\n<tool_call>\n{"name": "Bash", "arguments": {"command": "ls"}}\n</tool_call>', "Bash"),
    (
        "qwen3-coder",
        "<tool_call>\n<function=Bash>\n<parameter=command>\nls -la\n</parameter>\n</function>\n</tool_call>",
        "Bash",
    ),
    ("llama31 function tag", '<function=TodoWrite>{"todos": []}</function>', "TodoWrite"),
    (
        "glm",
        "Let me look.<tool_call>Bash\n<arg_key>command</arg_key>\n<arg_value>ls</arg_value>\n</tool_call>",
        "Bash",
    ),
    (
        "minimax",
        '<minimax:tool_call>\n<invoke name="Bash">\n<parameter name="command">ls</parameter>\n</invoke>\n'
        "</minimax:tool_call>",
        "Bash",
    ),
    (
        "claude xml",
        '<function_calls><invoke name="bash"><parameter name="command">ls</parameter></invoke>',
        "Bash",
    ),
    ("fenced json", 'I will run:\n```json\n{"name": "Bash", "arguments": {"command": "ls"}}\n```', "Bash"),
    ("llama json parameters", '{"name": "Bash", "parameters": {"command": "pwd"}}', "Bash"),
    ("openai-shaped json", '{"type": "function", "function": {"name": "Bash", "arguments": "{}"}}', "Bash"),
    ("pythonic", '[Bash(command="ls")]', "Bash"),
    (
        "kimi",
        '<|tool_calls_section_begin|><|tool_call_begin|>functions.Bash:0<|tool_call_argument_begin|>{"command": "ls"}'
        "<|tool_call_end|><|tool_calls_section_end|>",
        "Bash",
    ),
    (
        "deepseek v3",
        '<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>Bash\n```json\n{"command": "ls"}\n```'
        "<｜tool▁call▁end｜><｜tool▁calls▁end｜>",
        "Bash",
    ),
    (
        "deepseek v3.1",
        '<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>Bash<｜tool▁sep｜>{"command": "ls"}<｜tool▁call▁end｜>',
        "Bash",
    ),
    (
        "harmony",
        '<|channel|>commentary to=functions.Bash <|constrain|>json<|message|>{"command":"ls"}<|call|>',
        "Bash",
    ),
    ("mistral list", '[TOOL_CALLS][{"name": "Bash", "arguments": {"command": "ls"}}]', "Bash"),
    ("mistral v11", '[TOOL_CALLS]Bash[ARGS]{"command": "ls"}', "Bash"),
    ("python_tag", '<|python_tag|>{"name": "Bash", "parameters": {"command": "ls"}}', "Bash"),
]


@pytest.mark.parametrize(("style", "content", "name"), TEXT_FORMS, ids=[t[0] for t in TEXT_FORMS])
def test_text_form_detected(style: str, content: str, name: str) -> None:
    results = check_calls(DECLARED, [], content)
    assert [(r.kind, r.name, r.call_id) for r in results] == [("text_form", name, None)], style


def test_reserved_tokens_flag_even_an_undeclared_name() -> None:
    content = '[TOOL_CALLS]rm_everything[ARGS]{"path": "/"}'
    (result,) = detect_text_form(content, DECLARED)
    assert result.name == "rm_everything"
    assert "not a declared tool" in result.detail


NOT_TEXT_FORMS = [
    "Use the `<tool_call>` tag to wrap a JSON object when you call a function.",
    'The config has {"name": "my-app", "version": "1.0"} in package.json.',
    '{"name": "unknown_tool", "arguments": {}}',
    "Call it like `<function=search_docs>` if that tool exists.",
    "I ran Bash(command) earlier and it printed the files.",
    "Plain answer: the tests pass.",
]


@pytest.mark.parametrize("content", NOT_TEXT_FORMS)
def test_prose_is_not_a_text_form_call(content: str) -> None:
    assert detect_text_form(content, DECLARED) == []


def test_structured_call_plus_text_form_gives_both() -> None:
    content = '<tool_call>{"name": "TodoWrite", "arguments": {"todos": []}}</tool_call>'
    results = check_calls(DECLARED, [ToolCall("a", "Bash", '{"command": "ls"}')], content)
    assert [r.kind for r in results] == ["ok", "text_form"]


def test_two_hermes_calls_are_two_findings() -> None:
    content = (
        '<tool_call>{"name": "Bash", "arguments": {"command": "ls"}}</tool_call>\n'
        '<tool_call>{"name": "Bash", "arguments": {"command": "pwd"}}</tool_call>'
    )
    assert len(detect_text_form(content, DECLARED)) == 2


def test_detection_is_cheap_on_long_plain_text() -> None:
    content = "All done. The refactor keeps behaviour identical.\n" * 2000
    start = time.perf_counter()
    for _ in range(50):
        assert detect_text_form(content, DECLARED) == []
    assert (time.perf_counter() - start) / 50 < 0.005


# --------------------------------------------------------------------------- extraction per wire API


def test_declared_openai_chat_and_responses() -> None:
    chat = {"tools": [{"type": "function", "function": {"name": "Bash", "parameters": BASH}}]}
    assert declared_openai(chat) == {"Bash": BASH}
    responses = {
        "tools": [
            {"type": "function", "name": "shell", "parameters": BASH},
            {"type": "custom", "name": "apply_patch", "format": {"type": "grammar"}},
            {"type": "web_search"},
            {
                "type": "namespace",
                "name": "mcp",
                "tools": [{"type": "function", "name": "mcp__x", "parameters": {}}],
            },
        ]
    }
    assert declared_openai(responses) == {"shell": BASH, "apply_patch": None, "mcp__x": {}}
    assert declared_openai({"functions": [{"name": "f", "parameters": TODO}]}) == {"f": TODO}


def test_declared_anthropic_keeps_server_tools_unchecked() -> None:
    body = {
        "tools": [
            {"name": "Bash", "description": "run", "input_schema": BASH},
            {"type": "web_search_20250305", "name": "web_search", "max_uses": 5},
        ]
    }
    assert declared_anthropic(body) == {"Bash": BASH, "web_search": None}


def test_calls_openai_serialises_object_arguments() -> None:
    message = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "Bash", "arguments": '{"command":"ls"}'},
            },
            {
                "id": "call_2",
                "type": "function",
                "function": {"name": "Bash", "arguments": {"command": "pwd"}},
            },
        ],
    }
    calls = calls_openai(message)
    assert calls[0] == ToolCall("call_1", "Bash", '{"command":"ls"}')
    assert orjson.loads(calls[1].arguments) == {"command": "pwd"}


def test_calls_anthropic_and_text() -> None:
    content = [
        {"type": "text", "text": "Listing files."},
        {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": "ls"}},
    ]
    (call,) = calls_anthropic(content)
    assert call.id == "toolu_1" and orjson.loads(call.arguments) == {"command": "ls"}
    assert check_calls(DECLARED, [call], text_anthropic(content)) == [CallCheck("ok", "Bash", "toolu_1")]


def test_calls_responses() -> None:
    output = [
        {"type": "reasoning", "id": "rs_1"},
        {"type": "function_call", "call_id": "call_9", "name": "shell", "arguments": '{"command":["ls"]}'},
    ]
    assert calls_responses(output) == [ToolCall("call_9", "shell", '{"command":["ls"]}')]


# --------------------------------------------------------------------------- failed tool results


def test_anthropic_is_error_results() -> None:
    body = {
        "messages": [
            {"role": "user", "content": "go"},
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "ok"},
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_2",
                        "is_error": True,
                        "content": [{"type": "text", "text": "Exit code 2\nls: cannot access"}],
                    },
                    # text that looks like an error is NOT a failure without the flag
                    {"type": "tool_result", "tool_use_id": "toolu_3", "content": "Error: not really"},
                ],
            },
        ]
    }
    assert failed_results(body, "anthropic") == [("toolu_2", "is_error: Exit code 2")]


@pytest.mark.parametrize(
    ("content", "failed"),
    [
        ('Traceback (most recent call last):\n  File "x.py"', True),
        ("error: pathspec 'main2' did not match any file(s) known to git", True),
        ("Exit code: 1\nWall time: 0.2 seconds\nOutput:\n", True),
        ("Exit code: 0\nWall time: 0.2 seconds\nOutput:\nerror: listed in a log", False),
        ("FAILED tests/test_x.py::test_y - AssertionError", True),
        ("12 passed, failed: 0", False),
        ("bash: foo: command not found", True),  # a Unix diagnostic, `prog: [arg: ]message` ending its line
        ("cat: missing.txt: No such file or directory\n", True),  # OpenCode's bash tool: stderr as it came
        (
            "Note: no such file or directory errors are retried",
            False,
        ),  # prose: the message does not end the line
        ("see the log for: permission denied lines", False),
        ("def f():\n    raise ValueError('error: bad')", False),
        ("x = 1\n" * 80 + "Traceback (most recent call last):", False),  # beyond the 300-char window
        ([{"type": "text", "text": "fatal: not a git repository"}], True),
    ],
)
def test_openai_tool_message_rule(content: object, failed: bool) -> None:
    body = {"messages": [{"role": "tool", "tool_call_id": "call_1", "content": content}]}
    result = failed_results(body, "openai")
    assert bool(result) is failed
    if failed:
        assert result[0][0] == "call_1" and result[0][1].startswith("matched ")


QWEN_SHELL = "Command: {cmd}\nDirectory: (root)\nOutput: {out}\nError: (none)\nExit Code: {code}\nSignal: 0\nProcess Group PGID: 4242"


@pytest.mark.parametrize(
    ("content", "failed", "reason"),
    [
        # Cline's CLI: a JSON string per result, a list of them for run_commands, `success` says how it went
        (
            '[{"query":"cat /nope","result":"[Command exited with code 1]\\n\\n[stderr]\\ncat: /nope: No such file",'
            '"error":"Command exited with code 1","success":false}]',
            True,
            "Command exited with code 1",
        ),
        (
            '{"query":"edit:/w/out.txt","result":"File created successfully at: /w/out.txt","success":true}',
            False,
            None,
        ),
        ('[{"query":"ls","result":"error: is a file name here","success":true}]', False, None),
        (
            '{"error":"\u2716 Invalid input: expected string, received undefined\\n  \u2192 at new_text"}',
            True,
            "Invalid input",
        ),
        ('{"result": "plain JSON a tool printed", "count": 2}', False, None),
        # Qwen Code's shell tool, as an array of text parts: "Error: (none)" is no error, the exit code decides
        (
            [
                {
                    "type": "text",
                    "text": QWEN_SHELL.format(
                        cmd="cat /nope", out="cat: /nope: No such file or directory", code=1
                    ),
                }
            ],
            True,
            "Exit Code: 1",
        ),
        (
            [{"type": "text", "text": QWEN_SHELL.format(cmd="ls", out="a.txt\nerror: listed", code=0)}],
            False,
            None,
        ),
        (
            [
                {
                    "type": "text",
                    "text": QWEN_SHELL.format(cmd="seq 400", out="\n".join(map(str, range(400))), code=2),
                }
            ],
            True,
            "Exit Code: 2",
        ),  # the exit code sits after the output, however long
        # Continue's CLI
        (
            "Error executing tool Bash: Error (exit code 1): cat: /nope: No such file or directory\n",
            True,
            "error executing tool",
        ),
    ],
)
def test_agent_tool_result_shapes(content: object, failed: bool, reason: str | None) -> None:
    """What the real agents send back for a failed (or successful) tool, as recorded from their pinned binaries."""
    body = {"messages": [{"role": "tool", "tool_call_id": "call_9", "content": content}]}
    result = failed_results(body, "openai")
    assert bool(result) is failed, result
    if reason:
        assert result[0][0] == "call_9" and reason.lower() in result[0][1].lower(), result


def test_custom_patterns() -> None:
    body = {"messages": [{"role": "tool", "tool_call_id": "c", "content": "E: unable to locate package"}]}
    assert failed_results(body, "openai") == []
    assert failed_results(body, "openai", patterns=("e:",))[0][0] == "c"


def test_responses_function_call_output() -> None:
    body = {
        "input": [
            {"type": "function_call", "call_id": "c1", "name": "shell", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c1", "output": "Exit code: 127\nOutput:\nnot found"},
            {
                "type": "custom_tool_call_output",
                "call_id": "c2",
                "output": "Success. Updated the following files",
            },
        ]
    }
    assert [cid for cid, _ in failed_results(body, "responses")] == ["c1"]


def test_module_exports_are_importable() -> None:
    assert toolcheck.DEFAULT_ERROR_PATTERNS and toolcheck.ERROR_WINDOW == 300


def test_split_modules_keep_the_public_names_on_app_core_toolcheck() -> None:
    """#16 split toolcheck into schemas / text_form / extract / tool_results; callers still import from the
    package, and each name there is the one its module defines (no second copy to drift)."""
    from app.core.toolcheck import extract, schemas, text_form, tool_results, verdicts

    homes = {
        "check_calls": schemas,
        "validator_for": schemas,
        "detect_text_form": text_form,
        "declared_openai": extract,
        "calls_anthropic": extract,
        "failed_results": tool_results,
        "gemini_call_id": tool_results,
        "NOT_FAILURES": verdicts,
        "ToolCall": verdicts,
    }
    for name, module in homes.items():
        assert getattr(toolcheck, name) is getattr(module, name), name
    assert all(hasattr(toolcheck, name) for name in toolcheck.__all__)

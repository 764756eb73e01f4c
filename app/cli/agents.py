"""Pointing agents at the proxy: `env` (variables or a settings file), `connect` and `disconnect` (the
agent's own settings file)."""

from __future__ import annotations

import argparse
import sys

from app.cli.args import AddCommand
from app.cli.context import config_store, kept, proxy_base, secret_store


def cmd_env(args: argparse.Namespace) -> int:
    from app.core.envexport import export_text
    from app.core.secrets import local_token

    base = proxy_base(config_store(args))  # where the proxy really is, else where the config says
    if args.debug:
        from app.core.envexport import DEBUG_PREFIX

        base += (
            DEBUG_PREFIX  # the same endpoints, whose answers name the preset, role and model (X-Downshift-*)
        )
    token = local_token(secret_store())
    if args.write:
        from app.core.agent_config import write_agent_config
        from app.core.envexport import FILE_AGENTS

        if args.agent not in FILE_AGENTS:
            print(
                f"downshift: --write is for agents configured by a file ({', '.join(FILE_AGENTS)}); "
                f'{args.agent} takes variables: eval "$(downshift env --agent {args.agent})"',
                file=sys.stderr,
            )
            return 2
        try:
            written = write_agent_config(args.agent, base, token)
        except (OSError, ValueError) as exc:
            print(f"downshift: {exc}", file=sys.stderr)
            return 1
        note = kept(written)
        print(f"{args.agent}: wrote {written.path}{note}", file=sys.stderr)
    sys.stdout.write(export_text(args.agent, args.format, base, token))
    return 0


def cmd_connect(args: argparse.Namespace) -> int:
    from app.core.connect import ConnectError, connect

    try:
        done = connect(args.agent, proxy_base(config_store(args)), args.shell)
    except ConnectError as exc:
        print(f"downshift: {exc}", file=sys.stderr)
        return 1
    backup = f" (the previous file is kept as {done.backup})" if done.backup else ""
    print(
        f"connected {args.agent}: wrote Downshift's settings into {done.path}{backup}, no token in it.\n"
        f"The agent reads the token from ${done.token_var}; add this line to your shell's rc file so every new "
        f"shell has it (and follows a token rotation or a port change):\n\n    {done.rc_line}\n\n"
        f"Undo with: downshift disconnect {args.agent}"
    )
    return 0


def cmd_disconnect(args: argparse.Namespace) -> int:
    from app.core.connect import ConnectError, disconnect

    try:
        path = disconnect(args.agent)
    except ConnectError as exc:
        print(f"downshift: {exc}", file=sys.stderr)
        return 1
    print(
        f"disconnected {args.agent}: {path} has its previous settings back. Remove the "
        f"`downshift env --agent {args.agent}` line from your shell's rc file too."
    )
    return 0


def register(add: AddCommand) -> None:
    from app.core.connect import CONNECTABLE
    from app.core.envexport import AGENTS, FORMATS

    p = add("env", cmd_env, 'print the variables that point an agent at the proxy: eval "$(downshift env)"')
    p.add_argument("--format", choices=FORMATS, default="bash")
    p.add_argument("--agent", choices=AGENTS, default="generic")
    p.add_argument(
        "--debug",
        action="store_true",
        help="point the agent at the proxy's /debug endpoints: answers carry X-Downshift-Preset/Role/Model",
    )
    p.add_argument(
        "--write",
        action="store_true",
        help="qwen-code, cline, continue: write (merge into) the agent's settings file, backing up the old one",
    )
    p = add(
        "connect",
        cmd_connect,
        "write Downshift into an agent's own settings file (merged, backed up, no token)",
    )
    p.add_argument("agent", choices=list(CONNECTABLE))
    p.add_argument(
        "--shell",
        choices=("bash", "fish", "powershell"),
        default="bash",
        help="the shell whose rc line to print",
    )
    p = add("disconnect", cmd_disconnect, "undo `downshift connect`: the agent's settings as they were")
    p.add_argument("agent", choices=list(CONNECTABLE))

"""`downshift member add|list|revoke|remove`: the members of a shared team gateway (shape 2).

Run it against the gateway's database (`--db postgresql://...`, or the config the gateway uses). The token
of `member add` is printed once, to stdout alone, so it can be piped; only its hash is stored.
"""

from __future__ import annotations

import argparse
import sys

from app.cli.args import AddCommand, reads_only
from app.cli.context import open_ledger
from app.cli.format import print_json, when


def _at(value: object) -> str:
    """A member row's timestamp (unix seconds, as the ledger stores it) to the minute."""
    return when(float(value)) if isinstance(value, int | float) else "-"


def cmd_member(args: argparse.Namespace) -> int:
    from app.core.members import MemberError, add_member, list_members, remove_member, revoke_member

    engine = open_ledger(args)
    try:
        if args.action == "list":
            rows = list_members(engine)
            if args.json:
                print_json(rows)
                return 0
            if not rows:
                print("no members yet: `downshift member add NAME`")
            for r in rows:
                state = "active" if r["active"] else "revoked " + _at(r["revoked_at"])
                print(f"{r['name']:<24} dsm-{r['token_id']}-...  issued {_at(r['created_at'])}  {state}")
            return 0
        if not args.name:
            print(f"downshift: usage: downshift member {args.action} NAME", file=sys.stderr)
            return 2
        if args.action == "add":
            token = add_member(engine, args.name)
            print(token)
            print(
                f"member {args.name} added: this token is shown once; give it to {args.name} as their Downshift "
                "token (Authorization: Bearer or x-api-key)",
                file=sys.stderr,
            )
        elif args.action == "revoke":
            revoke_member(engine, args.name)
            print(
                f"member {args.name} revoked: every gateway instance refuses the token from the next request on"
            )
        else:
            remove_member(engine, args.name)
            print(f"member {args.name} removed (their calls keep their name)")
        return 0
    except MemberError as exc:
        print(f"downshift: {exc}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()


def cmd_team(args: argparse.Namespace) -> int:
    """`downshift team password`: the team ledger's database password, into the keyring (never the config)."""
    import getpass

    from app.core.secrets import SecretStore
    from app.core.team_ship import LEDGER_PASSWORD
    from app.paths import data_dir

    store = SecretStore(data_dir() / "secrets.json")
    if args.delete:
        store.delete(LEDGER_PASSWORD)
        print("team ledger password removed")
        return 0
    password = (
        sys.stdin.readline().rstrip("\n")
        if not sys.stdin.isatty()
        else getpass.getpass("team ledger password: ")
    )
    if not password:
        print("downshift: no password given", file=sys.stderr)
        return 2
    store.set(LEDGER_PASSWORD, password)
    print(f"team ledger password stored in the {store.describe()}; the proxy uses it from its next start")
    return 0


def register(add: AddCommand) -> None:
    p = add(
        "team",
        cmd_team,
        "team ledger settings kept outside the config file: `team password` stores the "
        "ledger's database password in the keyring",
    )
    p.add_argument("action", choices=("password",))
    p.add_argument("--delete", action="store_true", help="forget the stored password")
    p = add(
        "member",
        cmd_member,
        "members of a shared team gateway: add (prints the token once), list, revoke, remove",
    )
    p.add_argument("action", choices=("add", "list", "revoke", "remove"))
    reads_only(p, lambda args: args.action == "list")
    p.add_argument("name", nargs="?")
    p.add_argument("--json", action="store_true")

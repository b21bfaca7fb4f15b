"""Operations commands: `python -m webapp COMMAND`.

  create-user USERNAME --role ROLE   password from stdin (piped) or a prompt
  list-users
  set-role USERNAME ROLE
  deactivate USERNAME / activate USERNAME
  reset-password USERNAME            password from stdin or a prompt; ends the user's sessions
  ensure-admin                       first run: create `admin` if no admin exists, print its password once
  serve [--port 8050]                development server
"""
from __future__ import annotations

import argparse
import getpass
import secrets
import sys

from sqlalchemy import select

from core import audit
from core.config import get_settings
from core.db import session_scope
from core.models import ROLES, User
from core.users import UserError, create_user, get_user, set_password, validate_role


def read_password(prompt: str = "Password: ") -> str:
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass(prompt)
    if getpass.getpass("Repeat: ") != first:
        raise UserError("the passwords differ")
    return first


def cmd_create_user(args: argparse.Namespace) -> int:
    password = read_password()
    with session_scope() as db:
        user = create_user(db, args.username, password, args.role)
        audit.record(db, "user_created", target=user.username, details={"role": user.role, "via": "cli"})
    print(f"created {args.username} ({args.role})")
    return 0


def cmd_list_users(_: argparse.Namespace) -> int:
    with session_scope() as db:
        users = db.scalars(select(User).order_by(User.username)).all()
        for user in users:
            state = "active" if user.active else "inactive"
            last = user.last_login_at.isoformat(timespec="seconds") if user.last_login_at else "never"
            print(f"{user.username:<24} {user.role:<9} {state:<8} last login {last}")
    return 0


def cmd_set_role(args: argparse.Namespace) -> int:
    validate_role(args.role)
    with session_scope() as db:
        user = get_user(db, args.username)
        old, user.role = user.role, args.role
        user.session_token = secrets.token_hex(16)
        audit.record(db, "role_changed", target=user.username, details={"from": old, "to": args.role, "via": "cli"})
    print(f"{args.username}: {old} -> {args.role}")
    return 0


def _set_active(username: str, active: bool) -> int:
    with session_scope() as db:
        user = get_user(db, username)
        user.active = active
        user.session_token = secrets.token_hex(16)
        audit.record(db, "user_activated" if active else "user_deactivated", target=username,
                     details={"via": "cli"})
    print(f"{username}: {'active' if active else 'inactive'}")
    return 0


def cmd_reset_password(args: argparse.Namespace) -> int:
    password = read_password("New password: ")
    with session_scope() as db:
        user = get_user(db, args.username)
        set_password(db, user, password)
        audit.record(db, "password_reset", target=args.username, details={"via": "cli"})
    print(f"password of {args.username} changed; their sessions have ended")
    return 0


def cmd_ensure_admin(_: argparse.Namespace) -> int:
    settings = get_settings()
    with session_scope() as db:
        if db.scalar(select(User).where(User.role == "admin")):
            return 0
        password = settings.admin_password or secrets.token_urlsafe(12)
        create_user(db, "admin", password, "admin")
        audit.record(db, "user_created", target="admin", details={"role": "admin", "via": "first run"})
    if settings.admin_password:
        print("created user 'admin' with the password from TUMORSCREEN_ADMIN_PASSWORD")
    else:
        print("=" * 64)
        print(f"  created user 'admin' with password:  {password}")
        print("  (shown once; change it with: python -m webapp reset-password admin)")
        print("=" * 64)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from webapp.app import create_app

    create_app().run(host=args.host, port=args.port, debug=False)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m webapp", description="TumorScreen operations")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("create-user", help="create a user")
    p.add_argument("username")
    p.add_argument("--role", required=True, choices=ROLES)
    p.set_defaults(func=cmd_create_user)
    sub.add_parser("list-users", help="list users").set_defaults(func=cmd_list_users)
    p = sub.add_parser("set-role", help="change a user's role")
    p.add_argument("username")
    p.add_argument("role", choices=ROLES)
    p.set_defaults(func=cmd_set_role)
    for name, active in (("deactivate", False), ("activate", True)):
        p = sub.add_parser(name, help=f"{name} a user")
        p.add_argument("username")
        p.set_defaults(func=lambda a, active=active: _set_active(a.username, active))
    p = sub.add_parser("reset-password", help="set a new password")
    p.add_argument("username")
    p.set_defaults(func=cmd_reset_password)
    sub.add_parser("ensure-admin", help="create the first admin").set_defaults(func=cmd_ensure_admin)
    p = sub.add_parser("serve", help="development server")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8050)
    p.set_defaults(func=cmd_serve)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

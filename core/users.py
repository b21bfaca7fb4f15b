"""Accounts: creation, password hashing (Argon2id), authentication with throttling."""
from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.config import get_settings
from core.models import ROLES, LoginFailure, User, utcnow

_hasher = PasswordHasher()
# Verifying against this when the user does not exist keeps the timing of both failures alike.
_DUMMY_HASH = _hasher.hash("not-a-real-password")

MIN_PASSWORD_LENGTH = 10
USERNAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


class UserError(ValueError):
    """A user-management request that cannot be done; the message is shown to the operator."""


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def check_password_policy(password: str, username: str = "") -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(f"password must be at least {MIN_PASSWORD_LENGTH} characters")
    if username and password.lower() == username.lower():
        raise UserError("password must differ from the username")


def validate_username(username: str) -> None:
    if not (1 <= len(username) <= 64) or set(username) - USERNAME_CHARS:
        raise UserError("username must be 1-64 letters, digits, '.', '_' or '-'")


def validate_role(role: str) -> None:
    if role not in ROLES:
        raise UserError(f"role must be one of {', '.join(ROLES)}, got {role!r}")


def create_user(session: Session, username: str, password: str, role: str) -> User:
    validate_username(username)
    validate_role(role)
    check_password_policy(password, username)
    if session.scalar(select(User).where(User.username == username)):
        raise UserError(f"user {username!r} already exists")
    user = User(
        username=username,
        password_hash=hash_password(password),
        role=role,
        active=True,
        session_token=secrets.token_hex(16),
    )
    session.add(user)
    session.flush()
    return user


def set_password(session: Session, user: User, password: str) -> None:
    check_password_policy(password, user.username)
    user.password_hash = hash_password(password)
    user.session_token = secrets.token_hex(16)  # every open session of this user ends


def get_user(session: Session, username: str) -> User:
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise UserError(f"no user named {username!r}")
    return user


@dataclass(frozen=True)
class LoginResult:
    user: User | None
    throttled: bool = False


def _recent_failures(session: Session, username: str, address: str) -> tuple[int, int]:
    since = utcnow() - timedelta(seconds=get_settings().login_window_s)
    by_user = session.scalar(
        select(func.count()).where(LoginFailure.username == username, LoginFailure.at >= since)
    )
    by_address = session.scalar(
        select(func.count()).where(LoginFailure.address == address, LoginFailure.at >= since)
    )
    return int(by_user or 0), int(by_address or 0)


def authenticate(session: Session, username: str, password: str, address: str) -> LoginResult:
    """Check a login. Too many recent failures for the account or the address refuse it outright."""
    limit = get_settings().login_max_failures
    by_user, by_address = _recent_failures(session, username, address)
    # An address gets more tries than an account: a clinic's users may share one NAT address.
    if by_user >= limit or by_address >= limit * 4:
        return LoginResult(None, throttled=True)
    user = session.scalar(select(User).where(User.username == username))
    try:
        _hasher.verify(user.password_hash if user else _DUMMY_HASH, password)
        ok = user is not None and user.active
    except (VerificationError, InvalidHashError):
        ok = False
    if not ok:
        session.add(LoginFailure(username=username[:255], address=address[:64]))
        return LoginResult(None)
    assert user is not None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    session.execute(
        # Only this account's failures: logging in to one's own account must not reset an
        # attacker's count against the address.
        LoginFailure.__table__.delete().where(LoginFailure.username == username)
    )
    user.last_login_at = utcnow()
    return LoginResult(user)

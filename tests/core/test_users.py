from __future__ import annotations

import pytest

from core.db import session_scope
from core.models import LoginFailure
from core.users import UserError, authenticate, create_user
from sqlalchemy import select


def test_password_is_hashed_with_argon2(db_env) -> None:
    with session_scope() as db:
        user = create_user(db, "ana", "correct horse", "screener")
        assert user.password_hash.startswith("$argon2id$")
        assert "correct horse" not in user.password_hash


@pytest.mark.parametrize(
    ("username", "password", "role", "message"),
    [
        ("ana", "short", "screener", "password must be at least 10 characters"),
        ("ana", "correct horse", "boss", "role must be one of screener, manager, admin, got 'boss'"),
        ("a n a", "correct horse", "screener", "username must be 1-64 letters, digits, '.', '_' or '-'"),
        ("anabelle12", "AnaBelle12", "screener", "password must differ from the username"),
    ],
)
def test_invalid_accounts_are_refused(db_env, username: str, password: str, role: str, message: str) -> None:
    with session_scope() as db, pytest.raises(UserError) as error:
        create_user(db, username, password, role)
    assert str(error.value) == message


def test_duplicate_username_is_refused(db_env) -> None:
    with session_scope() as db:
        create_user(db, "ana", "correct horse", "screener")
    with session_scope() as db, pytest.raises(UserError, match="user 'ana' already exists"):
        create_user(db, "ana", "another pass", "admin")


def test_login_is_throttled_per_account_after_repeated_failures(db_env) -> None:
    with session_scope() as db:
        create_user(db, "ana", "correct horse", "screener")
    for _ in range(5):
        with session_scope() as db:
            assert authenticate(db, "ana", "wrong guess!", "10.0.0.1").user is None
    with session_scope() as db:
        result = authenticate(db, "ana", "correct horse", "10.0.0.2")
    assert result.user is None and result.throttled


def test_successful_login_clears_only_that_accounts_failures(db_env) -> None:
    with session_scope() as db:
        create_user(db, "ana", "correct horse", "screener")
        create_user(db, "ben", "battery staple", "screener")
    with session_scope() as db:
        authenticate(db, "ana", "nope nope nope", "10.0.0.1")
        authenticate(db, "ben", "nope nope nope", "10.0.0.1")
    with session_scope() as db:
        assert authenticate(db, "ana", "correct horse", "10.0.0.1").user is not None
    with session_scope() as db:
        remaining = db.scalars(select(LoginFailure.username)).all()
    assert remaining == ["ben"]


def test_inactive_user_cannot_log_in(db_env) -> None:
    with session_scope() as db:
        create_user(db, "ana", "correct horse", "screener").active = False
    with session_scope() as db:
        assert authenticate(db, "ana", "correct horse", "10.0.0.1").user is None

"""Helpers for the screener-page tests: data owned by two screeners, and firing one callback in-process."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from core.db import session_scope
from core.models import User
from core.users import create_user
from sqlalchemy import select

OTHER_SCREENER = ("screener2", "screener-two-pass")


@dataclass(frozen=True)
class Seeded:
    model_id: int
    mine: int  # batch of "screener"
    theirs: int  # batch of "screener2"
    my_scans: list[int]
    their_scans: list[int]


def user_id(db, name: str) -> int:
    return db.scalar(select(User.id).where(User.username == name))


def seed_two_screeners(n_scans: int = 12, n_rejected: int = 2) -> Seeded:
    """One active model; a batch for `screener` (with rejected files) and one for `screener2`."""
    from tests.factories import make_batch, make_model_version

    with session_scope() as db:
        other = create_user(db, OTHER_SCREENER[0], OTHER_SCREENER[1], "screener")
        mine_user = db.get(User, user_id(db, "screener"))
        mv = make_model_version(db)
        mine = make_batch(db, mine_user, mv, n_scans=n_scans, n_rejected=n_rejected, seed=1)
        theirs = make_batch(db, other, mv, n_scans=5, seed=2)
        return Seeded(mv.id, mine.id, theirs.id, [s.id for s in mine.scans], [s.id for s in theirs.scans])


def callback_key(dash_app, output_prefix: str) -> tuple[str, dict]:
    dash_app.server.test_client().get("/healthz")  # Dash builds its callback map on the first request
    matches = [(k, v) for k, v in dash_app.callback_map.items() if output_prefix in k]
    assert len(matches) == 1, f"{output_prefix}: {[k for k, _ in matches]}"
    return matches[0]


def fire(client, dash_app, output_prefix: str, inputs: dict[str, Any] | None = None,
         state: dict[str, Any] | None = None, changed: str | None = None):
    """POST one callback like the browser does. `inputs`/`state` map "id.property" to values (others None)."""
    from tests.webapp.conftest import parse_outputs

    key, spec = callback_key(dash_app, output_prefix)
    inputs, state = inputs or {}, state or {}

    def values(items: list[dict], given: dict[str, Any]) -> list[dict]:
        return [{"id": i["id"], "property": i["property"], "value": given.get(f"{i['id']}.{i['property']}")}
                for i in items]

    first = f"{spec['inputs'][0]['id']}.{spec['inputs'][0]['property']}"
    body = {"output": key, "outputs": parse_outputs(key), "inputs": values(spec["inputs"], inputs),
            "state": values(spec["state"], state), "changedPropIds": [changed or first]}
    return client.post("/_dash-update-component", json=body)


def page_layout(client, path: str, search: str = "") -> str:
    """The JSON of a page as Dash's router renders it for this client."""
    body = {"output": ".._pages_content.children..._pages_store.data..",
            "outputs": [{"id": "_pages_content", "property": "children"},
                        {"id": "_pages_store", "property": "data"}],
            "inputs": [{"id": "_pages_location", "property": "pathname", "value": path},
                       {"id": "_pages_location", "property": "search", "value": search}],
            "state": [], "changedPropIds": ["_pages_location.pathname"]}
    response = client.post("/_dash-update-component", json=body)
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    # Re-serialised: Dash escapes "/" as \u002f, which would hide every URL from a plain `in`.
    return json.dumps(response.get_json(), ensure_ascii=False)

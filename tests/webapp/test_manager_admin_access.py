"""Who may open the managers' and admins' pages: the layout is refused on the server to other roles."""
from __future__ import annotations

import pytest

from tests.webapp.test_roles import nav_links, page_html

NOT_ALLOWED = "Your role does not give access to this page."
# path → (an element only the page itself draws, roles allowed)
PAGES = {
    "/performance": ("Model performance", ("manager", "admin")),
    "/roi": ("roi-savings-1000", ("manager", "admin")),
    "/data": ("data-dataset", ("manager", "admin")),
    "/admin/datasets": ("ds-register", ("admin",)),
    "/admin/training": ("train-start", ("admin",)),
    "/admin/models": ("models-grid", ("admin",)),
    "/admin/audit": ("audit-grid", ("admin",)),
}


@pytest.mark.parametrize("role", ["screener", "manager", "admin"])
def test_each_page_opens_for_its_roles_only(client_for, role: str) -> None:
    client = client_for(role)
    links = nav_links(client)
    for path, (marker, roles) in PAGES.items():
        html = page_html(client, path)
        allowed = role in roles
        assert (marker in html) is allowed, (path, role)
        assert (NOT_ALLOWED in html) is (not allowed), (path, role)
        assert (path in links) is allowed, (path, role)

"""Two brands and a person of every role: what each can list, open and change, in the inbox and the API.

A case of a brand the person does not belong to must be a 404 everywhere, exactly like an id that does not
exist, so that its existence does not leak.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.contrib.auth.models import User
from django.test import Client

from caredesk.accounts.actions import do_create_api_token
from caredesk.accounts.models import Brand
from caredesk.cases.access import Right, access_case, brand_ids_with, visible_cases
from caredesk.cases.models import Case, Post
from caredesk.connectors.models import ConnectorInstallation
from factories import make_brand, make_case, make_installation, make_user
from roles import SEES, make_people

pytestmark = pytest.mark.django_db

HX = {"HX-Request": "true"}
MISSING = 999_999_999


@dataclass
class World:
    nimbus: Brand
    acme: Brand
    nimbus_case: Case
    acme_case: Case
    people: dict[str, User]


@pytest.fixture
def world(settings) -> World:
    settings.STATIC_ROOT = None
    nimbus, acme = make_brand("Nimbus"), make_brand("Acme")
    nimbus_inst: ConnectorInstallation = make_installation(nimbus)
    acme_inst: ConnectorInstallation = make_installation(acme)
    people = make_people(nimbus, acme)
    return World(nimbus, acme, make_case(nimbus_inst), make_case(acme_inst), people)


def _client(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _api(user: User) -> Client:
    return Client(headers={"Authorization": f"Bearer {do_create_api_token(user)}"})


@pytest.mark.parametrize("who", list(SEES))
def test_lists_show_only_the_brands_of_the_person(world: World, who: str) -> None:
    user = world.people[who]
    by_brand = {"nimbus": world.nimbus_case.pk, "acme": world.acme_case.pk}
    expected = {by_brand[b] for b in SEES[who]}
    assert set(visible_cases(user).values_list("pk", flat=True)) == expected

    api_ids = {c["id"] for c in _api(user).get("/api/cases?status=new,open,pending,resolved").json()["items"]}
    assert api_ids == expected

    page = _client(user).get("/cases/?status=any", headers=HX).content.decode()
    for brand, case_id in by_brand.items():
        assert (f'data-case-id="{case_id}"' in page) == (brand in SEES[who]), (who, brand)


@pytest.mark.parametrize("who", list(SEES))
def test_a_case_of_another_brand_is_a_404_like_a_missing_one(world: World, who: str) -> None:
    user = world.people[who]
    browser, api = _client(user), _api(user)
    for brand, case in (("nimbus", world.nimbus_case), ("acme", world.acme_case)):
        visible = brand in SEES[who]
        expected = 200 if visible else 404
        post = Post.objects.filter(case=case).first()
        assert post is not None
        reads = {
            "page": browser.get(f"/cases/{case.pk}/"),
            "pane": browser.get(f"/cases/{case.pk}/", headers=HX),
            "live": browser.get(f"/cases/{case.pk}/live"),
            "presence": browser.get(f"/cases/{case.pk}/presence"),
            "api detail": api.get(f"/api/cases/{case.pk}"),
        }
        for name, response in reads.items():
            assert response.status_code == expected, (who, brand, name)
        if not visible:
            writes = {
                "note": browser.post(f"/cases/{case.pk}/notes", {"text": "x"}, headers=HX),
                "resolve": browser.post(f"/cases/{case.pk}/status", {"status": "resolved"}, headers=HX),
                "api note": api.post(f"/api/cases/{case.pk}/notes", {"text": "x"}, content_type="application/json"),
                "api resolve": api.post(f"/api/cases/{case.pk}/resolve"),
                "api label": api.post(f"/api/posts/{post.pk}/labels", {"task": "topic", "value": "billing"},
                                      content_type="application/json"),
            }
            for name, response in writes.items():
                assert response.status_code == 404, (who, brand, name)
            # The same answer as for an id that does not exist at all.
            assert api.get(f"/api/cases/{case.pk}").json() == {"detail": f"case {case.pk} does not exist"}
            assert api.get(f"/api/cases/{MISSING}").status_code == 404
    assert Case.objects.get(pk=world.acme_case.pk).status == "new"
    assert not world.acme_case.notes.exists() or who in ("owner", "outsider")


def test_agents_work_their_cases_and_supervisors_move_them(world: World) -> None:
    case = world.nimbus_case
    agent, supervisor, admin = (world.people[k] for k in ("agent", "supervisor", "admin"))
    other = make_user("other-agent", brands=[world.nimbus])
    url = f"/api/cases/{case.pk}/assign"

    agent_api = _api(agent)
    # An agent may not hand a case to someone else...
    refused = agent_api.post(url, {"assignee": "other-agent"}, content_type="application/json")
    assert refused.status_code == 403
    assert "supervisor" in refused.json()["detail"]
    # ...but takes it, works it and hands it back.
    assert agent_api.post(url, {"assignee": "me"}, content_type="application/json").json()["assignee"] == "agent"
    note = agent_api.post(f"/api/cases/{case.pk}/notes", {"text": "on it"}, content_type="application/json")
    assert note.status_code == 201
    # Another agent cannot take it from them.
    taken = _api(other).post(url, {"assignee": "me"}, content_type="application/json")
    assert taken.status_code == 403
    # A supervisor (and an admin) moves it between people.
    moved = _api(supervisor).post(url, {"assignee": "other-agent"}, content_type="application/json")
    assert moved.status_code == 200 and moved.json()["assignee"] == "other-agent"
    assert _api(admin).post(url, {"assignee": None}, content_type="application/json").json()["assignee"] is None
    # Nobody can be given a case of a brand they do not work for.
    outsider = _api(supervisor).post(url, {"assignee": "outsider"}, content_type="application/json")
    assert outsider.status_code == 403 and "does not work for" in outsider.json()["detail"]
    volunteer = _api(supervisor).post(url, {"assignee": "volunteer"}, content_type="application/json")
    assert volunteer.status_code == 403


def test_the_inbox_offers_only_the_persons_brands_and_colleagues(world: World) -> None:
    page = _client(world.people["agent"]).get(f"/cases/{world.nimbus_case.pk}/").content.decode()
    assert "Nimbus" in page
    assert "Acme" not in page
    assert "outsider" not in page  # an agent of another brand is not offered as an assignee


def test_access_case_rights(world: World) -> None:
    from caredesk.cases.access import AccessDenied, CaseNotFound

    with pytest.raises(CaseNotFound):
        access_case(world.people["outsider"], world.nimbus_case.pk)
    with pytest.raises(CaseNotFound):
        access_case(world.people["volunteer"], world.nimbus_case.pk)
    with pytest.raises(AccessDenied):
        access_case(world.people["agent"], world.nimbus_case.pk, right=Right.SUPERVISE)
    assert access_case(world.people["supervisor"], world.nimbus_case.pk, right=Right.SUPERVISE).pk == (
        world.nimbus_case.pk
    )
    assert brand_ids_with(world.people["owner"]) is None
    assert brand_ids_with(world.people["admin"], Right.ADMINISTER) == {world.nimbus.pk}
    assert brand_ids_with(world.people["supervisor"], Right.ADMINISTER) == frozenset()


def test_a_deactivated_person_sees_nothing(world: World) -> None:
    from caredesk.accounts.actions import do_deactivate_user

    agent = world.people["agent"]
    browser, api = _client(agent), _api(agent)
    assert api.get(f"/api/cases/{world.nimbus_case.pk}").status_code == 200
    do_deactivate_user(agent)
    assert api.get(f"/api/cases/{world.nimbus_case.pk}").status_code == 401
    assert browser.get(f"/cases/{world.nimbus_case.pk}/").status_code == 302  # back to the login page

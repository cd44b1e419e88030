"""The migration that makes customers per brand: a platform account that wrote to two brands before it becomes two
customers, and no post or case is lost."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("accounts", "0001_initial"), ("cases", "0003_case_topic_idx")]
AFTER = [("accounts", "0002_membership"), ("cases", "0006_author_brand_required")]
T = datetime(2026, 11, 1, tzinfo=UTC)


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def test_a_shared_author_is_split_into_one_customer_per_brand():
    old = _migrate(BEFORE)
    try:
        Brand = old.get_model("accounts", "Brand")
        User = old.get_model("auth", "User")
        Installation = old.get_model("connectors", "ConnectorInstallation")
        Customer = old.get_model("cases", "Customer")
        Author = old.get_model("cases", "Author")
        Case = old.get_model("cases", "Case")
        Post = old.get_model("cases", "Post")

        nimbus = Brand.objects.create(name="Nimbus", slug="nimbus")
        acme = Brand.objects.create(name="Acme", slug="acme")
        User.objects.create(username="ana", password="!")
        User.objects.create(username="root", password="!", is_superuser=True)
        inst = {b.slug: Installation.objects.create(brand=b, provider_key="replay", name=f"{b.slug} replay")
                for b in (nimbus, acme)}
        # Before: one Author (and its Nimbus customer) for both brands; Acme's case hangs on Nimbus's customer.
        customer = Customer.objects.create(brand=nimbus, display_name="Casey")
        casey = Author.objects.create(platform="x", external_id="u1", handle="casey", customer=customer)
        cases = {}
        for slug, brand in (("nimbus", nimbus), ("acme", acme)):
            cases[slug] = Case.objects.create(brand=brand, customer=customer, created_at=T, updated_at=T,
                                              last_inbound_at=T)
            for n in range(2):
                Post.objects.create(installation=inst[slug], external_id=f"{slug}{n}", author=casey,
                                    case=cases[slug], text="hi", created_at=T, received_at=T)
        lonely = Author.objects.create(platform="x", external_id="u2", handle="lurker")  # no posts, no customer
        ids = {"casey": casey.pk, "lonely": lonely.pk, **{k: v.pk for k, v in cases.items()}}
        posts_before = Post.objects.count()
    except Exception:
        _migrate(AFTER)
        raise

    new = _migrate(AFTER)
    Author = new.get_model("cases", "Author")
    Case = new.get_model("cases", "Case")
    Post = new.get_model("cases", "Post")
    Membership = new.get_model("accounts", "Membership")

    assert Post.objects.count() == posts_before
    assert Case.objects.count() == 2
    authors = {a.brand.slug: a for a in Author.objects.select_related("brand", "customer").filter(external_id="u1")}
    assert set(authors) == {"nimbus", "acme"}
    assert authors["nimbus"].pk == ids["casey"]
    for slug, author in authors.items():
        assert author.customer.brand.slug == slug
        assert set(Post.objects.filter(author=author).values_list("external_id", flat=True)) == {f"{slug}0", f"{slug}1"}
        case = Case.objects.get(pk=ids[slug])
        assert case.customer_id == author.customer_id, "each case hangs on its own brand's customer"
    assert not Author.objects.filter(pk=ids["lonely"]).exists()
    # The existing agent keeps working every brand; the site owner needs no membership.
    assert set(Membership.objects.values_list("user__username", "brand__slug", "role")) == {
        ("ana", "nimbus", "agent"), ("ana", "acme", "agent")
    }
    _migrate(_latest())


def _latest():
    executor = MigrationExecutor(connection)
    return executor.loader.graph.leaf_nodes()

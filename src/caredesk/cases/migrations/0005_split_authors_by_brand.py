"""Customers belong to one brand: the same platform account writing to two brands becomes two Authors, each with a
Customer of its own brand.

Before this, an Author was unique per platform and pointed at the Customer of whichever brand saw it first, so a
second brand's cases were attached to the first brand's customer. Here every Author gets the brand of its posts;
where its posts span brands it is copied once per further brand (with a Customer per original customer and
brand, so linked identities of one person stay linked), its posts move to the copy of their brand, and every case
whose customer is of another brand moves to the customer of its own brand. No post or case is deleted.
"""

from django.db import migrations, models


def split_authors_by_brand(apps, schema_editor):
    Author = apps.get_model("cases", "Author")
    Customer = apps.get_model("cases", "Customer")
    Case = apps.get_model("cases", "Case")
    Post = apps.get_model("cases", "Post")

    # (original customer id or None, brand id) -> customer of that brand
    customer_of: dict[tuple[int | None, int], int] = {}

    def brand_customer(original_id, brand_id, name):
        key = (original_id, brand_id)
        if key not in customer_of:
            original = Customer.objects.filter(pk=original_id).first() if original_id else None
            if original is not None and original.brand_id == brand_id:
                customer_of[key] = original.pk
            else:
                display = original.display_name if original is not None else name
                customer_of[key] = Customer.objects.create(brand_id=brand_id, display_name=display).pk
        return customer_of[key]

    post_brands = {}
    for author_id, brand_id in (
        Post.objects.values_list("author_id", "installation__brand_id").distinct().order_by("author_id")
    ):
        post_brands.setdefault(author_id, set()).add(brand_id)

    for author in Author.objects.select_related("customer").order_by("pk").iterator():
        brands = set(post_brands.get(author.pk, ()))
        if author.customer_id is not None:
            home = author.customer.brand_id
        elif brands:
            home = min(brands)
        else:
            author.delete()  # no posts and no customer: nothing refers to it
            continue
        author.brand_id = home
        if author.customer_id is None:
            author.customer_id = brand_customer(None, home, author.name or author.handle)
        author.save(update_fields=["brand", "customer"])
        for brand_id in sorted(brands - {home}):
            copy = Author.objects.create(
                brand_id=brand_id,
                platform=author.platform,
                external_id=author.external_id,
                handle=author.handle,
                name=author.name,
                followers=author.followers,
                verified=author.verified,
                customer_id=brand_customer(author.customer_id, brand_id, author.name or author.handle),
            )
            Post.objects.filter(author_id=author.pk, installation__brand_id=brand_id).update(author_id=copy.pk)

    for case in Case.objects.select_related("customer").exclude(customer__brand_id=models.F("brand_id")).iterator():
        case.customer_id = brand_customer(case.customer_id, case.brand_id, case.customer.display_name)
        case.save(update_fields=["customer"])


class Migration(migrations.Migration):

    dependencies = [
        ('cases', '0004_author_brand'),
    ]

    operations = [
        migrations.RunPython(split_authors_by_brand, migrations.RunPython.noop, elidable=False),
    ]

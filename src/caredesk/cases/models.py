from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.indexes import GinIndex, OpClass
from django.db import models
from django.db.models import Q
from django.db.models.functions import Upper


class Customer(models.Model):
    """One person, whatever handles they use. Several Authors (platform identities) can point here."""

    brand = models.ForeignKey("accounts.Brand", on_delete=models.CASCADE, related_name="customers")
    display_name = models.CharField(max_length=200, blank=True, default="")
    # The customer's id in the brand's own systems (billing, CRM), once verified.
    external_account_id = models.CharField(max_length=120, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.display_name or f"customer #{self.pk}"


class Author(models.Model):
    """An account on one platform (an X user, a Mastodon account...) as one brand knows it.

    The same platform account writing to two brands is two Authors and two Customers: each brand has its own
    history of that person, and nothing one brand's agents write about them reaches the other brand.
    """

    brand = models.ForeignKey("accounts.Brand", on_delete=models.CASCADE, related_name="authors")
    platform = models.CharField(max_length=40)
    external_id = models.CharField(max_length=200)
    handle = models.CharField(max_length=200)
    name = models.CharField(max_length=200, blank=True, default="")
    followers = models.PositiveIntegerField(default=0)
    verified = models.BooleanField(default=False)
    customer = models.ForeignKey(
        Customer, null=True, blank=True, on_delete=models.SET_NULL, related_name="authors"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["brand", "platform", "external_id"], name="author_unique_per_brand_platform"
            )
        ]

    def __str__(self) -> str:
        return f"@{self.handle} ({self.platform})"


# The active cases as partial indexes say it: ORs, not IN, since PostgreSQL prints an IN predicate in a form that
# reads back differently (bench/big_db.py recreates indexes from their printed definitions); a query's
# ``status IN ('new', 'open', 'pending')`` implies it all the same.
ACTIVE_CASE = Q(status="new") | Q(status="open") | Q(status="pending")


class Case(models.Model):
    """A customer conversation: every post, reply and note about one issue of one customer."""

    class Status(models.TextChoices):
        NEW = "new"
        OPEN = "open"
        PENDING = "pending"
        RESOLVED = "resolved"

    class Priority(models.IntegerChoices):
        LOW = 1, "low"
        NORMAL = 2, "normal"
        HIGH = 3, "high"
        URGENT = 4, "urgent"

    OPEN_STATUSES = (Status.NEW, Status.OPEN, Status.PENDING)

    # No single-column indexes on customer and assignee: case_customer_idx and case_assignee_idx lead with them
    # and serve every lookup (and the FK checks of a delete) by them; each extra index was one more write per
    # case ingest creates or updates. brand's stays: the one-brand subject search's count ANDs it with the
    # trigram index on the large database (bench/explain_lists.py), and a wider composite was not measured there.
    brand = models.ForeignKey("accounts.Brand", on_delete=models.CASCADE, related_name="cases")
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="cases", db_index=False)
    subject = models.CharField(max_length=200, blank=True, default="")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.NEW)
    priority = models.PositiveSmallIntegerField(choices=Priority.choices, default=Priority.NORMAL)
    topic = models.CharField(max_length=40, blank=True, default="")
    sentiment = models.CharField(max_length=10, blank=True, default="")
    urgency = models.FloatField(default=0.0)
    needs_reply = models.BooleanField(default=True)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="cases",
        db_index=False,
    )
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    last_inbound_at = models.DateTimeField()
    first_response_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["brand", "status", "-last_inbound_at"], name="case_queue_idx"),
            models.Index(fields=["assignee", "status"], name="case_assignee_idx"),
            models.Index(fields=["customer", "status"], name="case_customer_idx"),
            # Lists a brand's topics in use without reading every case (see inbox.presenters.get_topics).
            models.Index(fields=["brand", "topic"], name="case_brand_topic_idx"),
            # The retention job's walk over a brand's closed cases by last change (caredesk.retention); partial, so
            # the open cases that change all day never write to it.
            models.Index(fields=["brand", "updated_at", "id"], name="case_closed_updated_idx",
                         condition=Q(status="resolved")),
            # The list orderings (caredesk.cases.queries.ORDERINGS), whole and for the active cases the inbox
            # shows by default: a page is then an index range scan from the cursor's key, whichever brands the
            # user sees (brand_id IN (...) is checked on the rows the scan meets, not sorted for).
            models.Index(fields=["-last_inbound_at", "-id"], name="case_newest_idx"),
            models.Index(fields=["-last_inbound_at", "-id"], name="case_active_newest_idx",
                         condition=ACTIVE_CASE),
            models.Index(fields=["-priority", "-urgency", "-last_inbound_at", "-id"], name="case_urgent_idx"),
            models.Index(fields=["-priority", "-urgency", "-last_inbound_at", "-id"], name="case_active_urgent_idx",
                         condition=ACTIVE_CASE),
            # ``subject__icontains`` is UPPER(subject) LIKE UPPER('%word%'): trigrams of the same expression
            # answer it from the index instead of reading every subject.
            GinIndex(OpClass(Upper("subject"), name="gin_trgm_ops"), name="case_subject_trgm_idx"),
        ]

    def __str__(self) -> str:
        return f"case #{self.pk}"

    @property
    def is_open(self) -> bool:
        return self.status in self.OPEN_STATUSES


class Post(models.Model):
    """One message on a platform, inbound (from a customer) or outbound (from the brand)."""

    class Direction(models.TextChoices):
        INBOUND = "inbound"
        OUTBOUND = "outbound"

    # installation and case have no single-column index: post_unique_per_installation / post_reply_idx and
    # post_case_idx lead with them, and every post ingest writes paid for the duplicates.
    installation = models.ForeignKey(
        "connectors.ConnectorInstallation", on_delete=models.PROTECT, related_name="posts", db_index=False
    )
    external_id = models.CharField(max_length=200)
    author = models.ForeignKey(Author, on_delete=models.PROTECT, related_name="posts")
    case = models.ForeignKey(
        Case, null=True, blank=True, on_delete=models.SET_NULL, related_name="posts", db_index=False
    )
    direction = models.CharField(max_length=10, choices=Direction.choices, default=Direction.INBOUND)
    is_direct = models.BooleanField(default=False)
    # False when the post only matched a listening rule: its author did not address the brand. Some platforms'
    # rules forbid answering such a post through their API (the provider's ReplyRules say so).
    summoned = models.BooleanField(default=True)
    matched_keywords = models.JSONField(default=list, blank=True)
    text = models.TextField()
    language = models.CharField(max_length=12, blank=True, default="")
    url = models.URLField(max_length=500, blank=True, default="")
    in_reply_to_external_id = models.CharField(max_length=200, blank=True, default="")
    conversation_external_id = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField()
    received_at = models.DateTimeField()
    raw = models.JSONField(default=dict, blank=True)
    # Triage labels with scores and reasons, as produced by caredesk.triage (see TriageResult.as_dict).
    triage = models.JSONField(default=dict, blank=True)
    # Changed on the platform after we stored it: the text is the newest version (the old one is not kept).
    edited_at = models.DateTimeField(null=True, blank=True)
    # Deleted on the platform: the row stays for the thread, its text and raw record are removed.
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["installation", "external_id"], name="post_unique_per_installation")
        ]
        indexes = [
            models.Index(fields=["case", "created_at"], name="post_case_idx"),
            models.Index(fields=["installation", "in_reply_to_external_id"], name="post_reply_idx"),
        ]

    def __str__(self) -> str:
        return f"post {self.external_id}"


class Note(models.Model):
    """An internal note on a case, never sent to the customer."""

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="notes")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="notes")
    text = models.TextField()
    created_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"note #{self.pk} on case #{self.case_id}"


class Activity(models.Model):
    """One row per event: the case timeline, the audit log and the live-update stream read this table.

    Its id is the SSE event id, so a reconnecting browser resumes from the last id it saw.
    """

    class Kind(models.TextChoices):
        POST_RECEIVED = "post_received"
        CASE_CREATED = "case_created"
        CASE_ASSIGNED = "case_assigned"
        CASE_STATUS = "case_status"
        NOTE_ADDED = "note_added"
        REPLY_QUEUED = "reply_queued"
        REPLY_SENT = "reply_sent"
        REPLY_FAILED = "reply_failed"
        REPLY_UNKNOWN = "reply_unknown"  # a send was interrupted and the platform cannot say if it went out
        REPLY_DISCARDED = "reply_discarded"
        CASE_LABELS = "case_labels"
        LABEL_CORRECTED = "label_corrected"  # an agent corrected a post's triage label (see caredesk.triage)
        POST_EDITED = "post_edited"  # the author edited a post on the platform
        POST_DELETED = "post_deleted"  # the author (or the platform) deleted a post: its text is gone here too

    kind = models.CharField(max_length=30, choices=Kind.choices)
    brand = models.ForeignKey("accounts.Brand", on_delete=models.CASCADE, related_name="activities")
    # No single-column index on case: activity_case_idx (case, id) leads with it.
    case = models.ForeignKey(
        Case, null=True, blank=True, on_delete=models.CASCADE, related_name="activities", db_index=False
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="activities"
    )
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["case", "id"], name="activity_case_idx")]
        constraints = [
            models.CheckConstraint(condition=~Q(kind=""), name="activity_kind_not_empty"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk}"

"""Who may see and change which cases: the one access layer every page, API route, export and stream uses.

zulip's ``access_*`` pattern: a view never fetches a case by id itself; it asks :func:`access_case`, which returns
the case only if the user may have it and otherwise raises :class:`CaseNotFound`, the same error a missing id
gets, so a case of another brand answers 404 and its existence does not leak. Lists start from
:func:`visible_cases`.

Rights, per brand membership (:class:`~caredesk.accounts.models.Role`):

========== ======================================================================================
site owner every brand, everything (a superuser; manages brands and people)
admin      everything a supervisor may, plus the brand's settings, people and connectors
supervisor every case of the brand; assigns cases to anyone of the brand, takes cases from others
agent      every case of the brand; takes unassigned cases, works them, hands back their own
volunteer  no case, until a later issue defines what volunteers may answer
========== ======================================================================================
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

from django.contrib.auth import get_user_model
from django.db.models import Q, QuerySet

from caredesk.accounts.models import Membership, Role
from caredesk.cases.models import Case, Post

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, User


class CaseNotFound(Exception):
    """No such case for this user: it does not exist or belongs to a brand they cannot see."""

    def __init__(self, case_id: int) -> None:
        super().__init__(f"case {case_id} does not exist")
        self.case_id = case_id


class AccessDenied(Exception):
    """The user may see the case but not make this change; the message says why."""


class Right(enum.Enum):
    READ = "read"  # open the case, its thread and timeline; hear its events
    WORK = "work"  # reply, note, label, resolve, reopen, take
    SUPERVISE = "supervise"  # assign to others, take from others
    ADMINISTER = "administer"  # brand settings, people, connectors


# The roles that hold each right. Volunteers hold none of these yet.
_ROLES: dict[Right, frozenset[str]] = {
    Right.READ: frozenset({Role.ADMIN, Role.SUPERVISOR, Role.AGENT}),
    Right.WORK: frozenset({Role.ADMIN, Role.SUPERVISOR, Role.AGENT}),
    Right.SUPERVISE: frozenset({Role.ADMIN, Role.SUPERVISOR}),
    Right.ADMINISTER: frozenset({Role.ADMIN}),
}

_CACHE_ATTR = "_caredesk_brand_roles"


def _active(user: AbstractBaseUser | AnonymousUser | None) -> bool:
    return bool(user is not None and user.is_authenticated and user.is_active)


def is_site_owner(user: AbstractBaseUser | AnonymousUser | None) -> bool:
    return _active(user) and bool(getattr(user, "is_superuser", False))


def brand_roles(user: User) -> dict[int, str]:
    """The user's role per brand id (one query, cached on the user object for the request)."""
    cached: dict[int, str] | None = getattr(user, _CACHE_ATTR, None)
    if cached is None:
        cached = dict(Membership.objects.filter(user_id=user.pk).values_list("brand_id", "role"))
        setattr(user, _CACHE_ATTR, cached)
    return cached


def brand_ids_with(user: AbstractBaseUser | AnonymousUser | None, right: Right = Right.READ) -> frozenset[int] | None:
    """The brands where ``user`` holds ``right``; None means every brand (a site owner)."""
    if not _active(user):
        return frozenset()
    if is_site_owner(user):
        return None
    roles = _ROLES[right]
    return frozenset(b for b, role in brand_roles(user).items() if role in roles)  # type: ignore[arg-type]


def visible_brand_ids(user: AbstractBaseUser | AnonymousUser | None) -> frozenset[int] | None:
    """Brands whose cases and events ``user`` may see; None means every brand."""
    return brand_ids_with(user, Right.READ)


def has_right(user: User, brand_id: int, right: Right) -> bool:
    allowed = brand_ids_with(user, right)
    return allowed is None or brand_id in allowed


def visible_cases(user: AbstractBaseUser | AnonymousUser | None) -> QuerySet[Case]:
    """Every case ``user`` may see: the start of every case list."""
    brands = visible_brand_ids(user)
    if brands is None:
        return Case.objects.all()
    return Case.objects.filter(brand_id__in=brands)


def access_case(user: User, case_id: int, *, right: Right = Right.READ, for_update: bool = False) -> Case:
    """The case if ``user`` may have it with ``right``.

    Raises :class:`CaseNotFound` when the user cannot even see it (also for a missing id) and
    :class:`AccessDenied` when they see it but lack ``right``. With ``for_update`` the row is locked for the
    rest of the caller's transaction.
    """
    cases = visible_cases(user).select_related("brand", "customer", "assignee")
    if for_update:
        cases = cases.select_for_update(of=("self",))
    case = cases.filter(pk=case_id).first()
    if case is None:
        raise CaseNotFound(case_id)
    if right is not Right.READ and not has_right(user, case.brand_id, right):
        raise AccessDenied(f"your role for {case.brand.name} does not allow this")
    return case


def check_assignment(actor: User, case: Case, assignee: User | None) -> None:
    """May ``actor`` give ``case`` to ``assignee`` (None: unassign)? Raises :class:`AccessDenied` if not.

    An agent takes unassigned cases and hands back their own; moving a case between people is a supervisor's.
    The assignee must be able to work the case's brand.
    """
    if assignee is not None and not has_right(assignee, case.brand_id, Right.WORK):
        raise AccessDenied(f"{assignee.get_username()} does not work for {case.brand.name}")
    if has_right(actor, case.brand_id, Right.SUPERVISE):
        return
    if not has_right(actor, case.brand_id, Right.WORK):
        raise AccessDenied(f"your role for {case.brand.name} does not allow this")
    current = case.assignee_id
    if assignee is not None and assignee.pk != actor.pk:
        raise AccessDenied("only a supervisor assigns a case to someone else")
    if current is not None and current != actor.pk:
        raise AccessDenied("only a supervisor takes a case from someone else")


def brand_people(brand_ids: frozenset[int] | None, right: Right = Right.WORK) -> QuerySet[User]:
    """Active people who hold ``right`` in any of these brands (None: any brand), site owners included."""
    users = get_user_model().objects.filter(is_active=True)
    if brand_ids is None:
        return users.order_by("username")  # type: ignore[return-value]
    members = Q(memberships__brand_id__in=brand_ids, memberships__role__in=_ROLES[right])
    return users.filter(members | Q(is_superuser=True)).distinct().order_by("username")  # type: ignore[return-value]


def visible_posts(user: AbstractBaseUser | AnonymousUser | None) -> QuerySet[Post]:
    """Every post ``user`` may see, with or without a case (spam and the brand's own posts have none)."""
    brands = visible_brand_ids(user)
    if brands is None:
        return Post.objects.all()
    return Post.objects.filter(installation__brand_id__in=brands)


def access_post(user: User, post_id: int, *, right: Right = Right.READ) -> Post:
    """The post if ``user`` may have it with ``right``; :class:`PostNotFound` / :class:`AccessDenied` if not."""
    post = visible_posts(user).select_related("installation").filter(pk=post_id).first()
    if post is None:
        raise PostNotFound(post_id)
    if right is not Right.READ and not has_right(user, post.installation.brand_id, right):
        raise AccessDenied("your role for this brand does not allow this")
    return post


class PostNotFound(Exception):
    def __init__(self, post_id: int) -> None:
        super().__init__(f"post {post_id} does not exist")
        self.post_id = post_id

from __future__ import annotations

import pytest
from django.db import connection

from caredesk.connectors.actions import do_create_installation
from caredesk.connectors.base import ConnectorError
from caredesk.connectors.models import ConnectorInstallation
from factories import make_brand

pytestmark = pytest.mark.django_db


def test_credentials_are_encrypted_at_rest():
    installation = do_create_installation(
        make_brand(), "replay", "x", {"brand": "nimbus"}, credentials={"bearer_token": "s3cret-token-value"}
    )
    with connection.cursor() as cursor:
        cursor.execute("SELECT credentials_encrypted FROM connectors_connectorinstallation WHERE id = %s",
                       [installation.pk])
        stored = cursor.fetchone()[0]
    assert "s3cret-token-value" not in stored
    assert ConnectorInstallation.objects.get(pk=installation.pk).get_credentials() == {
        "bearer_token": "s3cret-token-value"
    }


def test_invalid_config_is_refused_with_the_reason():
    with pytest.raises(ConnectorError, match="speed"):
        do_create_installation(make_brand(), "replay", "x", {"speed": -1})
    with pytest.raises(ConnectorError, match="unknown connector provider 'nope'"):
        do_create_installation(make_brand(), "nope", "x", {})
    assert not ConnectorInstallation.objects.exists()

from django.urls import include, path

from caredesk.api.health import healthz
from caredesk.api.urls import api

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("api/", api.urls),
    path("settings/connections/", include("caredesk.connectors.urls")),
    path("", include("caredesk.inbox.urls")),
]

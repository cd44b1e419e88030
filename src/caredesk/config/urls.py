from django.urls import include, path

from caredesk.api.health import healthz
from caredesk.api.urls import api
from caredesk.connectors.webhooks import receive_webhook
from caredesk.ops.views import metrics

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics, name="metrics"),
    path("api/", api.urls),
    path("settings/connections/", include("caredesk.connectors.urls")),
    path("hooks/<int:installation_id>", receive_webhook, name="webhook"),
    path("", include("caredesk.inbox.urls")),
]

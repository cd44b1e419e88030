from django.urls import path

from caredesk.connectors import views

app_name = "connectors"

urlpatterns = [
    path("", views.connections, name="connections"),
    path("fields", views.connection_fields, name="fields"),
    path("add", views.connection_add, name="add"),
    path("<int:installation_id>/enabled", views.connection_enabled, name="enabled"),
    path("<int:installation_id>/test", views.connection_test, name="test"),
    path("<int:installation_id>/edit", views.connection_edit, name="edit"),
    path("<int:installation_id>/budget", views.connection_budget, name="budget"),
    path("<int:installation_id>/x/connect", views.x_connect, name="x_connect"),
    path("<int:installation_id>/x/callback", views.x_callback, name="x_callback"),
]

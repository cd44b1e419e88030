from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "caredesk.accounts"
    label = "accounts"
    default_auto_field = "django.db.models.BigAutoField"

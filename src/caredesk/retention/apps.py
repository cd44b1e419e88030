from django.apps import AppConfig


class RetentionConfig(AppConfig):
    name = "caredesk.retention"
    label = "retention"

from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "caredesk.jobs"
    label = "jobs"

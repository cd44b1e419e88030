"""ASGI entry point: ``uvicorn caredesk.config.asgi:application``."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "caredesk.config.settings")

application = get_asgi_application()

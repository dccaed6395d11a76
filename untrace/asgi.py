import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "untrace.settings")

django_application = get_asgi_application()

from apps.ingest.asgi import with_ingest_fast_path  # noqa: E402 - needs Django set up
from apps.proxy.asgi import with_proxy  # noqa: E402 - needs Django set up

application = with_proxy(with_ingest_fast_path(django_application))

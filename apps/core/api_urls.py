from rest_framework.routers import SimpleRouter

from apps.ingest.api import WebhookEndpointViewSet
from apps.keys.api import ApiKeyViewSet

router = SimpleRouter(trailing_slash=False)
router.register("keys", ApiKeyViewSet, basename="keys")
router.register("webhook-endpoints", WebhookEndpointViewSet, basename="webhook-endpoints")

urlpatterns = router.urls

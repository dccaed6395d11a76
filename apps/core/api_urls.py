from rest_framework.routers import SimpleRouter

from apps.budgets.api import BudgetViewSet
from apps.delivery.api import DeliveryViewSet
from apps.destinations.api import DestinationViewSet
from apps.ingest.api import WebhookEndpointViewSet
from apps.keys.api import ApiKeyViewSet

router = SimpleRouter(trailing_slash=False)
router.register("budgets", BudgetViewSet, basename="budgets")
router.register("deliveries", DeliveryViewSet, basename="deliveries")
router.register("destinations", DestinationViewSet, basename="destinations")
router.register("keys", ApiKeyViewSet, basename="keys")
router.register("webhook-endpoints", WebhookEndpointViewSet, basename="webhook-endpoints")

urlpatterns = router.urls

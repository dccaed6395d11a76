from rest_framework.routers import SimpleRouter

from apps.keys.api import ApiKeyViewSet

router = SimpleRouter(trailing_slash=False)
router.register("keys", ApiKeyViewSet, basename="keys")

urlpatterns = router.urls

from django.urls import path
from rest_framework.routers import SimpleRouter

from apps.privacy.api import ErasureViewSet, ExportView

router = SimpleRouter(trailing_slash=False)
router.register("v1/privacy/erasures", ErasureViewSet, basename="privacy-erasures")

urlpatterns = [
    path("v1/privacy/export", ExportView.as_view(), name="privacy-export"),
    *router.urls,
]

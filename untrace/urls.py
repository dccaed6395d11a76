from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from apps.core import views as core_views
from apps.proxy.api import ProxySettingsView

handler404 = "apps.core.errors.json_not_found"
handler500 = "apps.core.errors.json_server_error"

schema_view = SpectacularAPIView.as_view(authentication_classes=[], permission_classes=[])
# The split view serves its start-up script as a file: no inline script under the CSP.
docs_view = SpectacularSwaggerSplitView.as_view(
    url_name="schema", authentication_classes=[], permission_classes=[]
)

urlpatterns = [
    path("health", core_views.health, name="health"),
    path("ready", core_views.ready, name="ready"),
    path("metrics", core_views.metrics, name="metrics"),
    path("v1/schema", schema_view, name="schema"),
    path("v1/docs", docs_view, name="docs"),
    path("", include("apps.ingest.urls")),
    path("", include("apps.traces.urls")),
    path("v1/routing/", include("apps.routing.urls")),
    path("", include("apps.billing.urls")),
    path("v1/proxy-settings", ProxySettingsView.as_view(), name="proxy-settings"),
    path("v1/", include("apps.core.api_urls")),
    path("", include("apps.audit.urls")),
    path("", include("apps.privacy.urls")),
    path("accounts/", include("allauth.urls")),
    path("", include("apps.accounts.urls")),
    path("", include("apps.dashboard.urls")),
    path("admin/", admin.site.urls),
]

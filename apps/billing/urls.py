from django.urls import path

from apps.billing import api

urlpatterns = [
    path("v1/usage", api.UsageView.as_view(), name="usage"),
    path("v1/billing/checkout", api.CheckoutView.as_view(), name="billing-checkout"),
    path("v1/billing/portal", api.PortalView.as_view(), name="billing-portal"),
    path("billing/stripe/webhook", api.stripe_webhook, name="stripe-webhook"),
]

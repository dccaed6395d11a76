from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "apps.billing"
    label = "billing"

    def ready(self) -> None:
        from apps.billing.services import retention_days_for
        from apps.traces.retention import RETENTION_RESOLVERS

        if retention_days_for not in RETENTION_RESOLVERS:
            RETENTION_RESOLVERS.append(retention_days_for)  # the plan's retention

from django.apps import AppConfig


class DeliveryConfig(AppConfig):
    name = "apps.delivery"
    label = "delivery"

    def ready(self) -> None:
        from apps.core.metrics import STATE_COLLECTORS
        from apps.delivery.metrics import DeliveryStateCollector

        if not any(isinstance(c, DeliveryStateCollector) for c in STATE_COLLECTORS):
            STATE_COLLECTORS.append(DeliveryStateCollector())

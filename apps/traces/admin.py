from django.contrib import admin

from apps.traces.models import ModelPriceOverride


@admin.register(ModelPriceOverride)
class ModelPriceOverrideAdmin(admin.ModelAdmin):
    """Per-organization model prices (negotiated rates, fine-tunes); they win over the bundled table."""

    list_display = [
        "organization",
        "model",
        "input_per_million",
        "output_per_million",
        "cached_input_per_million",
    ]
    list_filter = ["organization"]
    search_fields = ["model", "organization__name"]

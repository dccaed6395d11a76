from django.db import migrations

PLANS = [
    # code, name, price in cents, traces a month, destinations, retention days, block at percent
    ("starter", "Starter", 0, 100_000, 2, 7, 110),
    ("growth", "Growth", 9_900, 10_000_000, 5, 30, None),
    ("scale", "Scale", 49_900, 100_000_000, None, 90, None),
    ("enterprise", "Enterprise", None, None, None, None, None),
]


def seed(apps, schema_editor):
    Plan = apps.get_model("billing", "Plan")
    for code, name, price, traces, destinations, retention, block in PLANS:
        Plan.objects.update_or_create(
            code=code,
            defaults={
                "name": name,
                "price_cents": price,
                "monthly_traces": traces,
                "max_destinations": destinations,
                "retention_days": retention,
                "block_at_percent": block,
            },
        )


class Migration(migrations.Migration):
    dependencies = [("billing", "0001_initial")]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]

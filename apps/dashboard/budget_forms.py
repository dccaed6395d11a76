"""The Budgets section of the project settings: its form, and what the page shows of each budget."""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.http import HttpRequest

from apps.budgets.models import Budget, Period
from apps.budgets.selectors import budgets_of, budgets_status
from apps.budgets.services import BudgetError
from apps.dashboard.context import ProjectPage
from apps.keys.models import ApiKey

WHOLE_PROJECT = ""


class BudgetForm(forms.Form):
    """Every writable field of a budget; lists are typed as text (thresholds and emails)."""

    name = forms.CharField(
        max_length=200, label="Budget name", error_messages={"required": "Give the budget a name."}
    )
    api_key = forms.ChoiceField(required=False, label="Counts the spend of")
    amount_usd = forms.DecimalField(
        label="Amount (USD)",
        max_digits=14,
        decimal_places=2,
        error_messages={"required": "Give an amount in USD.", "invalid": "Enter a number, e.g. 250.00."},
    )
    period = forms.ChoiceField(choices=Period.choices, initial=Period.MONTHLY, label="Period")
    thresholds = forms.CharField(
        max_length=200,
        initial="50, 80, 100",
        label="Alert at (percent)",
        help_text="Comma-separated percents from 1 to 1000; each alerts once per period.",
        error_messages={"required": "Give at least one percent."},
    )
    alert_emails = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        label="Alert emails",
        help_text="One address a line (or comma-separated).",
    )
    alert_webhook_url = forms.CharField(
        required=False,
        max_length=500,
        label="Alert webhook URL",
        help_text="Receives a JSON POST signed per Standard Webhooks with this budget's secret.",
    )
    hard_stop = forms.BooleanField(
        required=False,
        label="Hard stop: once spent, the proxy answers 429 budget_exceeded until the period resets",
    )
    enabled = forms.BooleanField(required=False, initial=True, label="Enabled")

    def __init__(self, *args: Any, project_id: Any, **kwargs: Any) -> None:
        kwargs.setdefault("auto_id", "budget_%s")  # the page holds other forms with the same field names
        super().__init__(*args, **kwargs)
        keys = ApiKey.objects.for_project(project_id).filter(revoked_at__isnull=True).order_by("name")
        self.fields["api_key"].choices = [(WHOLE_PROJECT, "The whole project")] + [
            (str(key.pk), f"Key “{key.name}” (ut_{key.lookup_id}_…)") for key in keys
        ]

    def clean_thresholds(self) -> list[int]:
        parts = [p for p in re.split(r"[\s,;]+", self.cleaned_data["thresholds"]) if p]
        values = []
        for part in parts:
            if not part.isdigit():
                raise forms.ValidationError(f"“{part}” is not a whole percent.")
            values.append(int(part))
        return values

    def clean_alert_emails(self) -> list[str]:
        return [p for p in re.split(r"[\s,;]+", self.cleaned_data["alert_emails"]) if p]

    def values(self) -> dict[str, Any]:
        """The service's keywords."""
        data = dict(self.cleaned_data)
        data["api_key_id"] = data.pop("api_key") or None
        return data

    def add_service_error(self, exc: BudgetError) -> None:
        """Put the service's error next to the field it is about."""
        field = exc.field.split("[")[0].removesuffix("_id")
        if field in self.fields:
            self.add_error(field, exc.message)
        else:
            self.add_error(None, f"{exc.field}: {exc.message}")


def budget_initial(budget: Budget) -> dict[str, Any]:
    return {
        "name": budget.name,
        "api_key": str(budget.api_key_id) if budget.api_key_id else WHOLE_PROJECT,
        "amount_usd": budget.amount_usd,
        "period": budget.period,
        "thresholds": ", ".join(str(t) for t in budget.thresholds),
        "alert_emails": "\n".join(budget.alert_emails),
        "alert_webhook_url": budget.alert_webhook_url,
        "hard_stop": budget.hard_stop,
        "enabled": budget.enabled,
    }


def budgets_context(
    request: HttpRequest,
    page: ProjectPage,
    *,
    form: BudgetForm | None = None,
    editing: Budget | None = None,
    revealed: tuple[Budget, str] | None = None,
) -> dict[str, Any]:
    """What the Budgets section needs: each budget with its spend this period, and the form
    (a new budget's, or the one named by ?budget=<id> being edited)."""
    budgets = list(budgets_of(page.project.pk))
    if editing is None and form is None and request.GET.get("budget"):
        editing = next((b for b in budgets if str(b.pk) == request.GET["budget"]), None)
    statuses = budgets_status(budgets)
    rows = [
        {
            "budget": b,
            "status": statuses[b.pk],
            "bar": min(100.0, statuses[b.pk].percent_used),
            "editing": editing is not None and editing.pk == b.pk,
        }
        for b in budgets
    ]
    if form is None:
        initial = budget_initial(editing) if editing else None
        form = BudgetForm(initial=initial, project_id=page.project.pk)
    return {
        "budget_rows": rows,
        "budget_form": form,
        "budget_editing": editing,
        "budget_revealed": revealed,
    }

from django import forms

from apps.accounts.models import Role
from apps.keys.models import Scope
from apps.keys.services import RATE_LIMIT_MAX


class KeyCreateForm(forms.Form):
    name = forms.CharField(max_length=200)
    scopes = forms.MultipleChoiceField(
        choices=Scope.choices,
        widget=forms.CheckboxSelectMultiple,
        initial=[Scope.INGEST, Scope.PROXY],
    )
    expires_at = forms.DateTimeField(
        required=False, widget=forms.DateTimeInput(attrs={"type": "datetime-local"})
    )
    allowed_cidrs = forms.CharField(
        required=False,
        label="Allowed networks",
        help_text="Optional: comma-separated IP networks, e.g. 203.0.113.0/24",
    )

    rate_limit_per_second = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=RATE_LIMIT_MAX,
        label="Rate limit (requests a second)",
        help_text="Optional: lower than the plan's limit for this key; empty: the plan's",
    )
    rate_limit_burst = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=RATE_LIMIT_MAX,
        label="Burst (requests at once)",
        help_text="Optional; empty: the plan's",
    )

    def clean_allowed_cidrs(self) -> list[str]:
        raw = self.cleaned_data["allowed_cidrs"]
        return [part.strip() for part in raw.split(",") if part.strip()]


class InviteForm(forms.Form):
    email = forms.EmailField()
    role = forms.ChoiceField(
        choices=[(r.value, r.label) for r in Role if r != Role.OWNER], initial=Role.MEMBER
    )


class ProjectCreateForm(forms.Form):
    name = forms.CharField(max_length=200)

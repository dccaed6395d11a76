"""Destination forms generated from each connector's settings (`Connector.fields`)."""

from __future__ import annotations

from typing import Any

from django import forms

from apps.destinations.connectors.base import Field
from apps.destinations.types import DestinationType, destination_types


def _headers_text(value: dict[str, str] | None) -> str:
    return "\n".join(f"{k}: {v}" for k, v in (value or {}).items())


def _parse_headers(text: str) -> dict[str, str]:
    headers = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        name, sep, value = line.partition(":")
        if not sep or not name.strip():
            raise forms.ValidationError(f"“{line.strip()}” is not a header line (Name: value)")
        headers[name.strip()] = value.strip()
    return headers


def _form_field(field: Field, *, editing: bool, stored_secret: bool) -> forms.Field:
    label = field.name.replace("_", " ").capitalize()
    help_text = field.help
    required = field.required and not (field.secret and stored_secret)
    if field.secret and stored_secret:
        help_text = (help_text + " " if help_text else "") + "Stored; leave empty to keep it."
    if field.kind == "choice":
        return forms.ChoiceField(
            label=label, choices=[(c, c) for c in field.choices], initial=field.default, help_text=help_text
        )
    if field.kind == "headers":
        return forms.CharField(
            label=label,
            required=False,
            widget=forms.Textarea(attrs={"rows": 3, "placeholder": "Authorization: Bearer ..."}),
            help_text=help_text or "One header per line: Name: value",
        )
    widget = forms.PasswordInput(render_value=False) if field.secret else forms.TextInput()
    return forms.CharField(
        label=label,
        required=required,
        initial=field.default,
        widget=widget,
        help_text=help_text,
        max_length=4096,
    )


class DestinationForm(forms.Form):
    """Name, enabled, and one input per setting of the chosen type."""

    name = forms.CharField(max_length=200)
    enabled = forms.BooleanField(required=False, initial=True)

    def __init__(self, *args: Any, dtype: DestinationType, stored: dict | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.dtype = dtype
        stored = stored or {}
        editing = bool(stored)
        for field in dtype.fields:
            stored_secret = field.secret and field.name in stored.get("secrets_set", ())
            self.fields[f"config_{field.name}"] = _form_field(
                field, editing=editing, stored_secret=stored_secret
            )
            if editing and not field.secret and field.name in stored.get("config", {}):
                value = stored["config"][field.name]
                self.initial[f"config_{field.name}"] = (
                    _headers_text(value) if field.kind == "headers" else value
                )

    def setting_fields(self):
        return [self[f"config_{f.name}"] for f in self.dtype.fields]

    def config(self, *, editing: bool) -> dict[str, Any]:
        """The `config` for the destination services: empty secrets are left out
        when editing (kept as stored); empty optional settings are cleared."""
        config: dict[str, Any] = {}
        for field in self.dtype.fields:
            value = self.cleaned_data.get(f"config_{field.name}")
            if field.kind == "headers":
                try:
                    parsed = _parse_headers(value or "")
                except forms.ValidationError as exc:
                    self.add_error(f"config_{field.name}", exc)
                    continue
                if parsed or not editing:
                    config[field.name] = parsed or None
                continue
            if value in (None, ""):
                if field.secret and editing:
                    continue
                config[field.name] = None if editing else None
                continue
            config[field.name] = value
        return {k: v for k, v in config.items() if v is not None or editing}


def type_choices() -> list[tuple[str, str]]:
    return sorted(((t.type, t.label) for t in destination_types().values()), key=lambda c: c[1].lower())

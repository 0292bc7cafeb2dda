"""The portal's forms: they shape what a person typed into a service's arguments.

They check form shape only (a number is a number, a file is JSON); every business rule
is the service's, so a refusal reads the same as it does in the API.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms

from agent_registry.access.models import AgentConfiguration, WidgetPosition
from agent_registry.agents.models import BillingModel
from agent_registry.core.money import CURRENCIES
from agent_registry.tenants.models import TenantRole


class MarketplaceFilter(forms.Form):
    q = forms.CharField(label="Search", max_length=100, required=False)
    category = forms.SlugField(label="Category", max_length=50, required=False)
    tag = forms.SlugField(label="Tag", max_length=50, required=False)


class SubscribeForm(forms.Form):
    project = forms.UUIDField(label="Project")
    plan = forms.UUIDField(widget=forms.HiddenInput)
    name = forms.CharField(label="Name of the key", max_length=200, required=False)


class ReasonForm(forms.Form):
    reason = forms.CharField(label="Reason", max_length=500, required=False)


class ConfigurationForm(forms.ModelForm):
    """Persona and branding: a part of ``access.services.CONFIGURATION_FIELDS``."""

    primary_color = forms.RegexField(
        label="Colour",
        regex=r"^#[0-9a-fA-F]{6}$",
        required=False,
        widget=forms.TextInput(attrs={"type": "color"}),
        help_text="The widget's main colour.",
    )
    widget_avatar_url = forms.URLField(
        label="Avatar URL", max_length=500, required=False, assume_scheme="https"
    )
    allowed_domains_text = forms.CharField(
        label="Allowed domains",
        required=False,
        max_length=2000,
        help_text=(
            "Sites where the widget may run, separated by commas, e.g. "
            "https://shop.example.com (a name alone means https)."
        ),
    )

    class Meta:
        model = AgentConfiguration
        fields = [
            "branding_name",
            "branding_welcome_message",
            "branding_tagline",
            "widget_avatar_url",
            "widget_position",
            "widget_enabled",
            "system_prompt_override",
            "temperature",
            "max_tokens",
        ]
        labels = {
            "branding_name": "Name",
            "branding_welcome_message": "Welcome message",
            "branding_tagline": "Tagline",
            "widget_avatar_url": "Avatar URL",
            "widget_position": "Widget position",
            "widget_enabled": "Widget enabled",
            "system_prompt_override": "System prompt",
            "temperature": "Temperature",
            "max_tokens": "Maximum tokens",
        }
        widgets = {
            "widget_position": forms.Select(choices=WidgetPosition.choices),
            "system_prompt_override": forms.Textarea(attrs={"rows": 3}),
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        theme = self.instance.widget_theme or {}
        self.fields["primary_color"].initial = theme.get("primary_color", "#1565c0")
        self.fields["allowed_domains_text"].initial = ", ".join(self.instance.allowed_domains)

    def service_fields(self) -> dict:
        """The cleaned values as ``configuration_update`` takes them."""
        data = {name: self.cleaned_data[name] for name in self.Meta.fields}
        theme = dict(self.instance.widget_theme or {})
        if self.cleaned_data.get("primary_color"):
            theme["primary_color"] = self.cleaned_data["primary_color"]
        data["widget_theme"] = theme
        text = self.cleaned_data.get("allowed_domains_text") or ""
        data["allowed_domains"] = [_origin(d.strip()) for d in text.split(",") if d.strip()]
        return data


def _origin(text: str) -> str:
    """A site as typed → an origin, as the widget's calls carry it: a bare name means
    https (``shop.example.com`` → ``https://shop.example.com``); the API's rule judges it."""
    return f"https://{text}" if ":" not in text and "/" not in text else text


class MemberForm(forms.Form):
    """Invite a name or change a member's role. The owner role is offered to owners only
    (``owner=``); a forged choice is still refused by the service, in words."""

    username = forms.CharField(label="Username", max_length=150)
    role = forms.ChoiceField(label="Role", choices=TenantRole.choices)
    email = forms.EmailField(label="Email", required=False)

    def __init__(self, *args: Any, owner: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not owner:
            offered = [(v, label) for v, label in TenantRole.choices if v != TenantRole.OWNER]
            # Still valid to submit (the service answers it, 403 in words).
            self.fields["role"].widget.choices = offered


RUNTIME_KINDS = [
    ("langflow", "Langflow flow (upload its export)"),
    ("openai", "OpenAI-compatible endpoint"),
    ("http", "HTTP endpoint"),
    ("echo", "Built-in echo (for trying things out)"),
]


class AgentForm(forms.Form):
    """Register an agent. The runtime comes from an uploaded Langflow export or from the
    endpoint fields; ``agents.runtime.parse_runtime`` judges both, as for the API."""

    project = forms.UUIDField(label="Project")
    agent_id = forms.SlugField(label="Agent id", max_length=100)
    name = forms.CharField(
        label="Name", max_length=200, required=False, help_text="Empty: the flow's own name."
    )
    description = forms.CharField(
        label="Description",
        max_length=5000,
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
    )
    category = forms.SlugField(label="Category", max_length=50, required=False)
    tags = forms.CharField(
        label="Tags", max_length=500, required=False, help_text="Separated by commas."
    )
    runtime_type = forms.ChoiceField(label="Runtime", choices=RUNTIME_KINDS)
    flow_file = forms.FileField(label="Langflow flow export (JSON)", required=False)
    endpoint = forms.URLField(
        label="Endpoint URL",
        assume_scheme="https",
        max_length=500,
        required=False,
        help_text="For Langflow: the Langflow server's base URL.",
    )
    model = forms.CharField(label="Model", max_length=200, required=False)
    api_key_ref = forms.CharField(
        label="Runtime secret name",
        max_length=64,
        required=False,
        help_text="The name of a runtime secret of your organisation.",
    )

    def tag_list(self) -> list[str]:
        text = self.cleaned_data.get("tags") or ""
        return [tag.strip().lower() for tag in text.split(",") if tag.strip()]


class AgentEditForm(forms.Form):
    """An agent's details and its runtime's fields (those its type has: a Langflow agent
    takes a new export, an OpenAI-compatible one a model, …); the type stays."""

    name = forms.CharField(label="Name", max_length=200)
    description = forms.CharField(
        label="Description",
        max_length=5000,
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
    )
    category = forms.SlugField(label="Category", max_length=50, required=False)
    tags = forms.CharField(
        label="Tags", max_length=500, required=False, help_text="Separated by commas."
    )

    endpoint = forms.URLField(
        label="Endpoint URL", assume_scheme="https", max_length=500, required=False
    )
    model = forms.CharField(label="Model", max_length=200, required=False)
    api_key_ref = forms.CharField(label="Runtime secret name", max_length=64, required=False)
    flow_file = forms.FileField(
        label="New Langflow flow export (JSON)",
        required=False,
        help_text="Empty: the agent keeps its flow.",
    )

    # The runtime field each form field edits (agents/runtime.py FIELDS).
    RUNTIME_FIELDS = {
        "endpoint": "endpoint",
        "model": "model",
        "api_key_ref": "api_key_ref",
        "flow_file": "flow_id",
    }

    def __init__(self, *args, runtime_fields: set[str], **kwargs):
        super().__init__(*args, **kwargs)
        for name, runtime_field in self.RUNTIME_FIELDS.items():
            if runtime_field not in runtime_fields:
                del self.fields[name]

    def service_fields(self) -> dict:
        text = self.cleaned_data.get("tags") or ""
        return {
            "name": self.cleaned_data["name"],
            "description": self.cleaned_data["description"],
            "category": self.cleaned_data["category"],
            "tags": [tag.strip().lower() for tag in text.split(",") if tag.strip()],
        }


class PlanForm(forms.Form):
    """A plan's prices in the plan's currency: the monthly fee in major units (19.00),
    per-call and per-1k-token prices as decimals."""

    name = forms.CharField(label="Plan name", max_length=100)
    billing_model = forms.ChoiceField(label="Pricing", choices=BillingModel.choices)
    currency = forms.ChoiceField(label="Currency", choices=[(c, c) for c in CURRENCIES])
    monthly_fee = forms.DecimalField(
        label="Monthly fee", min_value=Decimal("0"), max_digits=12, decimal_places=2, required=False
    )
    price_per_call = forms.DecimalField(
        label="Price per call",
        min_value=Decimal("0"),
        max_digits=12,
        decimal_places=6,
        required=False,
    )
    price_per_1k_tokens = forms.DecimalField(
        label="Price per 1,000 tokens",
        min_value=Decimal("0"),
        max_digits=12,
        decimal_places=6,
        required=False,
    )
    monthly_quota = forms.IntegerField(
        label="Calls a month", min_value=1, required=False, help_text="Empty: unlimited."
    )
    rate_limit_per_second = forms.IntegerField(label="Calls a second", min_value=1, initial=10)

    def service_fields(self) -> dict:
        data = self.cleaned_data
        exponent = CURRENCIES[data["currency"]]
        fee = data.get("monthly_fee") or Decimal("0")
        return {
            "name": data["name"],
            "billing_model": data["billing_model"],
            "currency": data["currency"],
            "price_cents": int(fee * (10**exponent)),
            "price_per_call": data.get("price_per_call") or Decimal("0"),
            "price_per_1k_tokens": data.get("price_per_1k_tokens") or Decimal("0"),
            "monthly_quota": data.get("monthly_quota"),
            "rate_limit_per_second": data["rate_limit_per_second"],
        }

"""The one module that talks to Waldur.

Requests are built by the pinned ``waldur-api-client`` (each operation's generated
``_get_kwargs``: path, query and body exactly as Waldur's OpenAPI schema has them) and
sent through its ``AuthenticatedClient``'s httpx client. Answers are read leniently
into the registry's own frozen dataclasses instead of the generated models: their
strict parsing fails on any field a newer or older server adds or drops, and the
registry needs only a few fields. Later calls (offerings, orders, usage) go here in
the same style: build with the generated module, ``_send``, read into a dataclass.

Every call has a timeout; at most ``WALDUR_MAX_CONCURRENCY`` calls run at once per
Waldur host (process-wide); timeouts, connection errors, 5xx and 429 are retried a few
times with exponential backoff and jitter, then raised as ``WaldurTransient``; other
4xx and unusable bodies raise ``WaldurPermanent`` at once.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from functools import cache
from importlib import import_module
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

import httpx
from django.conf import settings

from agent_registry.waldur.errors import (
    WaldurError,
    WaldurNotFound,
    WaldurPermanent,
    WaldurTransient,
)


@cache
def _generated() -> SimpleNamespace:
    """waldur-api-client's modules, imported at the first call to Waldur, not at startup.

    Importing any of its models imports all ~3,000 generated modules (about 3 s of CPU):
    every process (each worker, each command, each test subprocess) would pay that at
    Django setup whether or not the integration is on.
    """

    from waldur_api_client.api.customers import (
        customers_list,
        customers_retrieve,
        customers_users_list,
    )
    from waldur_api_client.api.hooks_web import (
        hooks_web_create,
        hooks_web_list,
        hooks_web_partial_update,
    )
    from waldur_api_client.api.marketplace_component_usages import (
        marketplace_component_usages_list,
        marketplace_component_usages_set_usage,
    )
    from waldur_api_client.api.marketplace_plans import (
        marketplace_plans_archive,
        marketplace_plans_create,
        marketplace_plans_partial_update,
        marketplace_plans_update_prices,
        marketplace_plans_update_quotas,
    )
    from waldur_api_client.api.marketplace_provider_offerings import (
        marketplace_provider_offerings_activate,
        marketplace_provider_offerings_archive,
        marketplace_provider_offerings_create,
        marketplace_provider_offerings_create_offering_component,
        marketplace_provider_offerings_list,
        marketplace_provider_offerings_pause,
        marketplace_provider_offerings_retrieve,
        marketplace_provider_offerings_unpause,
        marketplace_provider_offerings_update_description,
        marketplace_provider_offerings_update_offering_component,
        marketplace_provider_offerings_update_overview,
    )
    from waldur_api_client.api.projects import projects_list, projects_retrieve
    from waldur_api_client.client import AuthenticatedClient
    from waldur_api_client.models.component_usage_create_request import (
        ComponentUsageCreateRequest,
    )
    from waldur_api_client.models.component_usage_item_request import ComponentUsageItemRequest
    from waldur_api_client.models.event_types_enum import EventTypesEnum
    from waldur_api_client.models.offering_component_request import OfferingComponentRequest
    from waldur_api_client.models.offering_create_request import OfferingCreateRequest
    from waldur_api_client.models.offering_description_update_request import (
        OfferingDescriptionUpdateRequest,
    )
    from waldur_api_client.models.offering_overview_update_request import (
        OfferingOverviewUpdateRequest,
    )
    from waldur_api_client.models.offering_pause_request import OfferingPauseRequest
    from waldur_api_client.models.patched_provider_plan_details_request import (
        PatchedProviderPlanDetailsRequest,
    )
    from waldur_api_client.models.patched_web_hook_request import PatchedWebHookRequest
    from waldur_api_client.models.prices_update_request import PricesUpdateRequest
    from waldur_api_client.models.provider_plan_details_request import ProviderPlanDetailsRequest
    from waldur_api_client.models.quotas_update_request import QuotasUpdateRequest
    from waldur_api_client.models.update_offering_component_request import (
        UpdateOfferingComponentRequest,
    )
    from waldur_api_client.models.web_hook_content_type_enum import WebHookContentTypeEnum
    from waldur_api_client.models.web_hook_request import WebHookRequest

    return SimpleNamespace(
        customers_list=customers_list,
        customers_retrieve=customers_retrieve,
        customers_users_list=customers_users_list,
        hooks_web_create=hooks_web_create,
        hooks_web_list=hooks_web_list,
        hooks_web_partial_update=hooks_web_partial_update,
        projects_list=projects_list,
        projects_retrieve=projects_retrieve,
        marketplace_component_usages_list=marketplace_component_usages_list,
        marketplace_component_usages_set_usage=marketplace_component_usages_set_usage,
        AuthenticatedClient=AuthenticatedClient,
        ComponentUsageCreateRequest=ComponentUsageCreateRequest,
        ComponentUsageItemRequest=ComponentUsageItemRequest,
        EventTypesEnum=EventTypesEnum,
        PatchedWebHookRequest=PatchedWebHookRequest,
        WebHookContentTypeEnum=WebHookContentTypeEnum,
        WebHookRequest=WebHookRequest,
        # offerings
        offerings_list=marketplace_provider_offerings_list,
        offerings_retrieve=marketplace_provider_offerings_retrieve,
        offerings_create=marketplace_provider_offerings_create,
        offerings_update_overview=marketplace_provider_offerings_update_overview,
        offerings_update_description=marketplace_provider_offerings_update_description,
        offerings_create_component=marketplace_provider_offerings_create_offering_component,
        offerings_update_component=marketplace_provider_offerings_update_offering_component,
        offerings_activate=marketplace_provider_offerings_activate,
        offerings_pause=marketplace_provider_offerings_pause,
        offerings_unpause=marketplace_provider_offerings_unpause,
        offerings_archive=marketplace_provider_offerings_archive,
        plans_create=marketplace_plans_create,
        plans_partial_update=marketplace_plans_partial_update,
        plans_update_prices=marketplace_plans_update_prices,
        plans_update_quotas=marketplace_plans_update_quotas,
        plans_archive=marketplace_plans_archive,
        OfferingCreateRequest=OfferingCreateRequest,
        OfferingOverviewUpdateRequest=OfferingOverviewUpdateRequest,
        OfferingDescriptionUpdateRequest=OfferingDescriptionUpdateRequest,
        OfferingComponentRequest=OfferingComponentRequest,
        UpdateOfferingComponentRequest=UpdateOfferingComponentRequest,
        OfferingPauseRequest=OfferingPauseRequest,
        ProviderPlanDetailsRequest=ProviderPlanDetailsRequest,
        PatchedProviderPlanDetailsRequest=PatchedProviderPlanDetailsRequest,
        PricesUpdateRequest=PricesUpdateRequest,
        QuotasUpdateRequest=QuotasUpdateRequest,
        **_orders_modules(),
    )


# Orders, provider offerings and resources, and their API keys: operation modules by tag,
# and request models by module (``# --- orders and resources ---``).
_ORDERS_OPERATIONS = {
    "marketplace_orders": (
        "marketplace_orders_approve_by_provider",
        "marketplace_orders_list",
        "marketplace_orders_reject_by_provider",
        "marketplace_orders_retrieve",
        "marketplace_orders_set_backend_id",
        "marketplace_orders_set_state_done",
        "marketplace_orders_set_state_erred",
        "marketplace_orders_set_state_executing",
    ),
    "marketplace_provider_offerings": ("marketplace_provider_offerings_retrieve",),
    "marketplace_provider_resources": (
        "marketplace_provider_resources_list",
        "marketplace_provider_resources_retrieve",
        "marketplace_provider_resources_set_backend_id",
        "marketplace_provider_resources_set_endpoints",
    ),
    "marketplace_resource_api_keys": (
        "marketplace_resource_api_keys_list",
        "marketplace_resource_api_keys_report_created",
        "marketplace_resource_api_keys_set_key",
    ),
}
_ORDERS_MODELS = {
    "order_approve_by_provider_request": "OrderApproveByProviderRequest",
    "order_backend_id_request": "OrderBackendIDRequest",
    "order_error_details_request": "OrderErrorDetailsRequest",
    "order_provider_rejection_request": "OrderProviderRejectionRequest",
    "order_state": "OrderState",
    "resource_api_key_report_created_request": "ResourceApiKeyReportCreatedRequest",
    "resource_api_key_set_key_request": "ResourceApiKeySetKeyRequest",
    "resource_backend_id_request": "ResourceBackendIDRequest",
    "resource_endpoint_request": "ResourceEndpointRequest",
    "resource_endpoints_request": "ResourceEndpointsRequest",
}


def _orders_modules() -> dict[str, Any]:
    found: dict[str, Any] = {}
    for tag, names in _ORDERS_OPERATIONS.items():
        for name in names:
            found[name] = import_module(f"waldur_api_client.api.{tag}.{name}")
    for module, name in _ORDERS_MODELS.items():
        found[name] = getattr(import_module(f"waldur_api_client.models.{module}"), name)
    return found


PAGE_SIZE = 100
MAX_PAGES = 1000  # a listing longer than 100 000 objects is a bug, not a page to read
ATTEMPTS = 4
BACKOFF_SECONDS = 0.5  # first wait; doubles each retry, plus up to as much jitter
BACKOFF_CAP_SECONDS = 10.0
RETRIED_STATUSES = {429, 500, 502, 503, 504}


# --- What the registry reads ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WaldurCustomer:
    uuid: UUID
    name: str
    abbreviation: str
    blocked: bool
    archived: bool


@dataclass(frozen=True, slots=True)
class WaldurProject:
    uuid: UUID
    name: str
    customer_uuid: UUID
    is_removed: bool
    end_date: date | None


@dataclass(frozen=True, slots=True)
class WaldurRole:
    """A user's roles in one customer: its customer role (``CUSTOMER.OWNER``…) if any,
    and its roles in the customer's projects (``PROJECT.ADMIN``…)."""

    username: str
    customer_role: str
    project_roles: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class WaldurHook:
    uuid: UUID
    destination_url: str
    event_types: tuple[str, ...]
    is_active: bool


# --- Reading answers leniently ----------------------------------------------------


def _req(obj: Any, key: str, kind: type) -> Any:
    if not isinstance(obj, dict) or key not in obj or not isinstance(obj[key], kind):
        raise WaldurPermanent(f"Waldur's answer lacks a usable {key!r} ({kind.__name__})")
    return obj[key]


def _uuid(obj: Any, key: str) -> UUID:
    try:
        return UUID(str(_req(obj, key, str)))
    except ValueError as exc:
        raise WaldurPermanent(f"Waldur's {key!r} is not a UUID") from exc


def _opt_str(obj: dict, key: str) -> str:
    value = obj.get(key)
    return value if isinstance(value, str) else ""


def customer_from(data: Any) -> WaldurCustomer:
    return WaldurCustomer(
        uuid=_uuid(data, "uuid"),
        name=_req(data, "name", str),
        abbreviation=_opt_str(data, "abbreviation"),
        blocked=bool(data.get("blocked", False)),
        archived=bool(data.get("archived", False)),
    )


def project_from(data: Any) -> WaldurProject:
    end = data.get("end_date") if isinstance(data, dict) else None
    try:
        end_date = date.fromisoformat(end) if isinstance(end, str) and end else None
    except ValueError as exc:
        raise WaldurPermanent("Waldur's 'end_date' is not a date") from exc
    return WaldurProject(
        uuid=_uuid(data, "uuid"),
        name=_req(data, "name", str),
        customer_uuid=_uuid(data, "customer_uuid"),
        is_removed=bool(data.get("is_removed", False)),
        end_date=end_date,
    )


def role_from(data: Any) -> WaldurRole:
    projects = data.get("projects") if isinstance(data, dict) else None
    return WaldurRole(
        username=_req(data, "username", str),
        customer_role=_opt_str(data, "role_name"),
        project_roles=tuple(
            p["role_name"]
            for p in (projects or [])
            if isinstance(p, dict) and isinstance(p.get("role_name"), str)
        ),
    )


def hook_from(data: Any) -> WaldurHook:
    types = data.get("event_types") if isinstance(data, dict) else None
    return WaldurHook(
        uuid=_uuid(data, "uuid"),
        destination_url=_req(data, "destination_url", str),
        event_types=tuple(t for t in (types or []) if isinstance(t, str)),
        is_active=bool(data.get("is_active", True)),
    )


# --- offerings: what the registry reads ---------------------------------------------

# Offering states (waldur-api-client's OfferingState).
OFFERING_DRAFT = "Draft"
OFFERING_ACTIVE = "Active"
OFFERING_PAUSED = "Paused"
OFFERING_UNAVAILABLE = "Unavailable"
OFFERING_ARCHIVED = "Archived"
OFFERING_STATES = frozenset(
    {OFFERING_DRAFT, OFFERING_ACTIVE, OFFERING_PAUSED, OFFERING_UNAVAILABLE, OFFERING_ARCHIVED}
)
# The offering's texts the registry keeps in step (offerings.OVERVIEW_FIELDS) and reads.
_OFFERING_TEXTS = (
    "name",
    "description",
    "full_description",
    "getting_started",
    "access_url",
    "category",
    "backend_id",
)
_COMPONENT_KEYS = ("type", "name", "description", "measured_unit", "billing_type", "unit_factor")


@dataclass(frozen=True, slots=True)
class WaldurPlan:
    uuid: UUID
    url: str
    name: str
    backend_id: str
    archived: bool


@dataclass(frozen=True, slots=True)
class WaldurOffering:
    """A provider offering. ``details`` is the part ``offerings.offering_changes`` diffs
    (texts, category, state, components, plans with prices and quotas), checked and
    reduced to those keys; nothing else of Waldur's answer travels on."""

    uuid: UUID
    url: str
    name: str
    state: str
    backend_id: str
    plans: tuple[WaldurPlan, ...]
    details: dict[str, Any] = field(compare=False, repr=False)

    def plan_for(self, backend_id: str) -> WaldurPlan | None:
        """The plan with this backend id, a live one before an archived one."""
        found = [p for p in self.plans if p.backend_id == backend_id]
        return min(found, key=lambda p: p.archived) if found else None


def _dicts(obj: dict, key: str) -> list[dict]:
    items = obj.get(key)
    if items is None:
        return []
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise WaldurPermanent(f"Waldur's {key!r} is not a list of objects")
    return items


def _prices(obj: dict, key: str) -> dict[str, Any]:
    value = obj.get(key)
    return {k: v for k, v in value.items() if isinstance(k, str)} if isinstance(value, dict) else {}


def plan_from(data: Any) -> WaldurPlan:
    return WaldurPlan(
        uuid=_uuid(data, "uuid"),
        url=_opt_str(data, "url"),
        name=_opt_str(data, "name"),
        backend_id=_opt_str(data, "backend_id"),
        archived=bool(data.get("archived", False)),
    )


def offering_from(data: Any) -> WaldurOffering:
    state = _req(data, "state", str)
    if state not in OFFERING_STATES:
        raise WaldurPermanent(f"Waldur's offering state {state!r} is unknown")
    components = [
        {"uuid": str(_uuid(c, "uuid")), **{k: c[k] for k in _COMPONENT_KEYS if k in c}}
        for c in _dicts(data, "components")
    ]
    plans = [(plan_from(p), p) for p in _dicts(data, "plans")]
    details = {
        "uuid": str(_uuid(data, "uuid")),
        "url": _req(data, "url", str),
        "state": state,
        **{key: _opt_str(data, key) for key in _OFFERING_TEXTS},
        "components": components,
        "plans": [
            {
                "uuid": str(plan.uuid),
                "url": plan.url,
                "name": plan.name,
                "description": _opt_str(raw, "description"),
                "backend_id": plan.backend_id,
                "archived": plan.archived,
                "prices": _prices(raw, "prices"),
                "future_prices": _prices(raw, "future_prices"),
                "quotas": _prices(raw, "quotas"),
            }
            for plan, raw in plans
        ],
    }
    return WaldurOffering(
        uuid=_uuid(data, "uuid"),
        url=details["url"],
        name=details["name"],
        state=state,
        backend_id=details["backend_id"],
        plans=tuple(plan for plan, _ in plans),
        details=details,
    )


def _body(model: Any, payload: dict[str, Any]) -> Any:
    """A generated request model from a payload ``offerings.py`` built: its field names
    and enum values are checked here, before anything is sent."""
    try:
        return model.from_dict(payload)
    except (KeyError, TypeError, ValueError) as exc:
        raise WaldurPermanent(f"not a valid {model.__name__}: {exc}") from exc


# --- orders and resources: what the registry reads ------------------------------------


@dataclass(frozen=True, slots=True)
class MarketplaceOrder:
    """An order for one of the offerings (``OrderDetails``). ``type`` is Create, Update,
    Terminate or Restore; ``plan_uuid`` the plan ordered (an Update's new plan)."""

    uuid: UUID
    type: str
    state: str
    offering_uuid: UUID
    plan_uuid: UUID | None
    resource_uuid: UUID | None
    project_uuid: UUID | None
    resource_name: str
    created_by_email: str


@dataclass(frozen=True, slots=True)
class ProviderOffering:
    """An offering as its provider reads it: ``backend_id`` is the agent's ``agent_id``;
    ``plans`` pairs each Waldur plan's uuid with its ``backend_id`` (the AgentPlan id)."""

    uuid: UUID
    backend_id: str
    customer_uuid: UUID | None
    plans: tuple[tuple[UUID, str], ...]

    def plan_backend_id(self, plan_uuid: UUID) -> str:
        return next((backend for uuid, backend in self.plans if uuid == plan_uuid), "")


@dataclass(frozen=True, slots=True)
class ProviderResource:
    uuid: UUID
    state: str  # Creating, OK, Erred, Updating, Terminating, Terminated
    paused: bool
    backend_id: str
    offering_uuid: UUID | None
    endpoints: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ResourceApiKeyStatus:
    """A key Waldur keeps for a resource (never its value: only the consumer reveals it)."""

    uuid: UUID
    client_id: str
    state: str


def _opt_uuid(obj: dict, key: str) -> UUID | None:
    value = obj.get(key)
    if value in (None, ""):
        return None
    try:
        return UUID(str(value))
    except ValueError as exc:
        raise WaldurPermanent(f"Waldur's {key!r} is not a UUID") from exc


def order_from(data: Any) -> MarketplaceOrder:
    uuid = _uuid(data, "uuid")
    return MarketplaceOrder(
        uuid=uuid,
        type=_req(data, "type", str),
        state=_req(data, "state", str),
        offering_uuid=_uuid(data, "offering_uuid"),
        plan_uuid=_opt_uuid(data, "new_plan_uuid") or _opt_uuid(data, "plan_uuid"),
        resource_uuid=_opt_uuid(data, "marketplace_resource_uuid")
        or _opt_uuid(data, "resource_uuid"),
        project_uuid=_opt_uuid(data, "project_uuid"),
        resource_name=_opt_str(data, "resource_name"),
        created_by_email=_opt_str(data, "created_by_email"),
    )


def provider_offering_from(data: Any) -> ProviderOffering:
    plans = data.get("plans") if isinstance(data, dict) else None
    return ProviderOffering(
        uuid=_uuid(data, "uuid"),
        backend_id=_opt_str(data, "backend_id"),
        customer_uuid=_opt_uuid(data, "customer_uuid"),
        plans=tuple(
            (_uuid(plan, "uuid"), _opt_str(plan, "backend_id"))
            for plan in (plans or [])
            if isinstance(plan, dict)
        ),
    )


def provider_resource_from(data: Any) -> ProviderResource:
    endpoints = data.get("endpoints") if isinstance(data, dict) else None
    return ProviderResource(
        uuid=_uuid(data, "uuid"),
        state=_req(data, "state", str),
        paused=bool(data.get("paused", False)),
        backend_id=_opt_str(data, "backend_id"),
        offering_uuid=_opt_uuid(data, "offering_uuid"),
        endpoints=tuple(
            e["url"]
            for e in (endpoints or [])
            if isinstance(e, dict) and isinstance(e.get("url"), str)
        ),
    )


def api_key_status_from(data: Any) -> ResourceApiKeyStatus:
    return ResourceApiKeyStatus(
        uuid=_uuid(data, "uuid"),
        client_id=_opt_str(data, "client_id"),
        state=_opt_str(data, "state"),
    )


# --- usage: what is sent and read back ----------------------------------------------
# Waldur keeps amounts with 2 decimal places; more would be refused (or rounded).
AMOUNT_PLACES = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class WaldurComponentUsage:
    """One component's amount for a resource's month, as Waldur holds it."""

    resource_uuid: UUID
    type: str
    amount: Decimal
    billing_period: date


def _amount_text(amount: Decimal) -> str:
    if amount != amount.quantize(AMOUNT_PLACES):
        raise ValueError(f"usage amount {amount} has more than 2 decimal places")
    return f"{amount.quantize(AMOUNT_PLACES):f}"


def component_usage_from(data: Any) -> WaldurComponentUsage:
    # ``usage`` is a decimal string in Waldur's answers (the 8.1.3 model says int).
    raw = data.get("usage") if isinstance(data, dict) else None
    period = data.get("billing_period") if isinstance(data, dict) else None
    try:
        amount = Decimal(str(raw)) if isinstance(raw, (str, int, float)) else None
        first = date.fromisoformat(period[:10]) if isinstance(period, str) else None
    except (InvalidOperation, ValueError):
        amount = first = None
    if amount is None or first is None:
        raise WaldurPermanent("Waldur's component usage lacks a usable 'usage' or 'billing_period'")
    return WaldurComponentUsage(
        resource_uuid=_uuid(data, "resource_uuid"),
        type=_req(data, "type", str),
        amount=amount,
        billing_period=first,
    )


# --- The per-host cap ---------------------------------------------------------------

_caps: dict[str, threading.BoundedSemaphore] = {}
_caps_lock = threading.Lock()


def _cap_for(host: str, size: int) -> threading.BoundedSemaphore:
    with _caps_lock:
        if host not in _caps:
            _caps[host] = threading.BoundedSemaphore(max(1, size))
        return _caps[host]


# --- The client -------------------------------------------------------------------


class WaldurClient:
    """Use as ``with WaldurClient(...) as waldur:`` (or ``client_from_settings()``)."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float = 10.0,
        max_concurrency: int = 4,
        attempts: int = ATTEMPTS,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.attempts = max(1, attempts)
        self._cap = _cap_for(urlsplit(self.base_url).netloc, max_concurrency)
        self._api = _generated().AuthenticatedClient(
            base_url=self.base_url,
            token=token,
            prefix="Token",
            timeout=httpx.Timeout(timeout),
            follow_redirects=False,
        )

    def __enter__(self) -> WaldurClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._api.get_httpx_client().close()

    # --- sending ----------------------------------------------------------------

    def _send(self, kwargs: dict[str, Any], *, what: str, attempts: int | None = None) -> Any:
        """Send one request built by a generated ``_get_kwargs``; the decoded JSON body.

        ``attempts=1`` for a create that is not idempotent: a timed-out POST may have
        been done, and the caller looks before trying again.
        """
        last = "no attempt"
        attempts = self.attempts if attempts is None else max(1, attempts)
        for attempt in range(attempts):
            if attempt:
                wait = min(BACKOFF_CAP_SECONDS, BACKOFF_SECONDS * 2 ** (attempt - 1))
                time.sleep(wait + random.uniform(0, wait))  # noqa: S311  (jitter, not a secret)
            if not self._cap.acquire(timeout=self.timeout):
                last = "too many calls to Waldur at once"
                continue
            try:
                response = self._api.get_httpx_client().request(**kwargs)
            except httpx.TimeoutException:
                last = f"timed out after {self.timeout} s"
                continue
            except httpx.TransportError as exc:
                last = f"{type(exc).__name__}: {exc}"
                continue
            finally:
                self._cap.release()
            if response.status_code in RETRIED_STATUSES:
                last = f"HTTP {response.status_code}"
                continue
            return self._decode(response, what=what)
        raise WaldurTransient(f"{what}: {last} ({attempts} attempts)")

    @staticmethod
    def _decode(response: httpx.Response, *, what: str) -> Any:
        status = response.status_code
        if status == 404:
            raise WaldurNotFound(f"{what}: not found in Waldur", status=404)
        if not 200 <= status < 300:
            raise WaldurPermanent(f"{what}: HTTP {status} {response.text[:200]}", status=status)
        if status == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise WaldurPermanent(f"{what}: the answer is not JSON", status=status) from exc

    def _pages(self, build: Any, *, what: str, **params: Any) -> Iterator[Any]:
        for page in range(1, MAX_PAGES + 1):
            items = self._send(build(page=page, page_size=PAGE_SIZE, **params), what=what)
            if not isinstance(items, list):
                raise WaldurPermanent(f"{what}: expected a list")
            yield from items
            if len(items) < PAGE_SIZE:
                return
        raise WaldurPermanent(f"{what}: more than {MAX_PAGES} pages")

    # --- health -----------------------------------------------------------------

    def ping(self) -> None:
        """One cheap authenticated read, not retried (readiness has its own timeout)."""
        kwargs = _generated().customers_list._get_kwargs(page=1, page_size=1)
        try:
            response = self._api.get_httpx_client().request(**kwargs)
        except httpx.HTTPError as exc:
            raise WaldurTransient(f"Waldur unreachable: {type(exc).__name__}") from exc
        self._decode(response, what="ping")

    # --- customers and projects -------------------------------------------------

    def customers(self) -> list[WaldurCustomer]:
        return [
            customer_from(item)
            for item in self._pages(_generated().customers_list._get_kwargs, what="list customers")
        ]

    def customer(self, uuid: UUID) -> WaldurCustomer:
        return customer_from(
            self._send(_generated().customers_retrieve._get_kwargs(uuid), what=f"customer {uuid}")
        )

    def projects(self) -> list[WaldurProject]:
        return [
            project_from(item)
            for item in self._pages(_generated().projects_list._get_kwargs, what="list projects")
        ]

    def project(self, uuid: UUID) -> WaldurProject:
        return project_from(
            self._send(_generated().projects_retrieve._get_kwargs(uuid), what=f"project {uuid}")
        )

    def customer_roles(self, customer_uuid: UUID) -> list[WaldurRole]:
        """Every user with a role in the customer or one of its projects."""
        build = _generated().customers_users_list._get_kwargs
        return [
            role_from(item)
            for item in self._pages(
                lambda **p: build(customer_uuid, **p), what=f"users of customer {customer_uuid}"
            )
        ]

    # --- hooks ------------------------------------------------------------------

    def hooks(self) -> list[WaldurHook]:
        return [
            hook_from(item)
            for item in self._pages(_generated().hooks_web_list._get_kwargs, what="hooks")
        ]

    def hook_create(self, *, destination_url: str, event_types: list[str]) -> WaldurHook:
        body = _generated().WebHookRequest(
            destination_url=destination_url,
            event_types=[_generated().EventTypesEnum(t) for t in event_types],
            content_type=_generated().WebHookContentTypeEnum.JSON,
            is_active=True,
        )
        return hook_from(
            self._send(_generated().hooks_web_create._get_kwargs(body=body), what="create hook")
        )

    def hook_update(
        self, uuid: UUID, *, destination_url: str, event_types: list[str]
    ) -> WaldurHook:
        body = _generated().PatchedWebHookRequest(
            destination_url=destination_url,
            event_types=[_generated().EventTypesEnum(t) for t in event_types],
            content_type=_generated().WebHookContentTypeEnum.JSON,
            is_active=True,
        )
        return hook_from(
            self._send(
                _generated().hooks_web_partial_update._get_kwargs(uuid, body=body),
                what="update hook",
            )
        )

    # --- offerings --------------------------------------------------------------

    def offerings(self, *, customer_uuid: UUID) -> list[WaldurOffering]:
        """The provider's offerings, every state (archived ones too)."""
        build = _generated().offerings_list._get_kwargs
        return [
            offering_from(item)
            for item in self._pages(
                lambda **p: build(customer_uuid=customer_uuid, **p), what="list offerings"
            )
        ]

    def offering(self, uuid: UUID) -> WaldurOffering:
        return offering_from(
            self._send(_generated().offerings_retrieve._get_kwargs(uuid), what=f"offering {uuid}")
        )

    def offering_create(self, payload: dict[str, Any]) -> WaldurOffering:
        """``POST marketplace-provider-offerings/`` with its components and plans.

        Sent once (not retried): a create that timed out may have been made, so the
        caller looks for it by ``backend_id`` before creating again.
        """
        body = _body(_generated().OfferingCreateRequest, payload)
        return offering_from(
            self._send(
                _generated().offerings_create._get_kwargs(body=body),
                what="create offering",
                attempts=1,
            )
        )

    def _offering_action(self, name: str, uuid: UUID, body: Any = None) -> None:
        build = getattr(_generated(), f"offerings_{name}")._get_kwargs
        kwargs = build(uuid) if body is None else build(uuid, body=body)
        self._send(kwargs, what=f"{name} offering {uuid}")

    def offering_update_overview(self, uuid: UUID, payload: dict[str, Any]) -> None:
        body = _body(_generated().OfferingOverviewUpdateRequest, payload)
        self._offering_action("update_overview", uuid, body)

    def offering_update_description(self, uuid: UUID, payload: dict[str, Any]) -> None:
        """Waldur's name for moving the offering to another category."""
        body = _body(_generated().OfferingDescriptionUpdateRequest, payload)
        self._offering_action("update_description", uuid, body)

    def offering_component_create(self, uuid: UUID, payload: dict[str, Any]) -> None:
        body = _body(_generated().OfferingComponentRequest, payload)
        self._offering_action("create_component", uuid, body)

    def offering_component_update(self, uuid: UUID, payload: dict[str, Any]) -> None:
        body = _body(_generated().UpdateOfferingComponentRequest, payload)
        self._offering_action("update_component", uuid, body)

    def offering_activate(self, uuid: UUID) -> None:
        self._offering_action("activate", uuid)

    def offering_pause(self, uuid: UUID, *, reason: str) -> None:
        body = _generated().OfferingPauseRequest(paused_reason=reason)
        self._offering_action("pause", uuid, body)

    def offering_unpause(self, uuid: UUID) -> None:
        self._offering_action("unpause", uuid)

    def offering_archive(self, uuid: UUID) -> None:
        self._offering_action("archive", uuid)

    def plan_create(self, payload: dict[str, Any]) -> WaldurPlan:
        """``POST marketplace-plans/`` (``offering`` is the offering's URL); sent once,
        like ``offering_create``: the next publish sees a plan that was made."""
        body = _body(_generated().ProviderPlanDetailsRequest, payload)
        return plan_from(
            self._send(
                _generated().plans_create._get_kwargs(body=body), what="create plan", attempts=1
            )
        )

    def plan_update(self, uuid: UUID, payload: dict[str, Any]) -> None:
        body = _body(_generated().PatchedProviderPlanDetailsRequest, payload)
        self._send(_generated().plans_partial_update._get_kwargs(uuid, body=body), what="plan")

    def plan_update_prices(self, uuid: UUID, payload: dict[str, Any]) -> None:
        body = _body(_generated().PricesUpdateRequest, payload)
        self._send(
            _generated().plans_update_prices._get_kwargs(uuid, body=body),
            what=f"update_prices of plan {uuid}",
        )

    def plan_update_quotas(self, uuid: UUID, payload: dict[str, Any]) -> None:
        body = _body(_generated().QuotasUpdateRequest, payload)
        self._send(
            _generated().plans_update_quotas._get_kwargs(uuid, body=body),
            what=f"update_quotas of plan {uuid}",
        )

    def plan_archive(self, uuid: UUID) -> None:
        self._send(_generated().plans_archive._get_kwargs(uuid), what=f"archive plan {uuid}")

    # --- usage ------------------------------------------------------------------

    def set_usage(
        self, resource_uuid: UUID, *, at: datetime, usages: Mapping[str, Decimal]
    ) -> None:
        """Report a resource's month-to-date amounts (component type → amount).

        Waldur overwrites the value of (resource, component, month of ``at``), so this is
        safe to repeat. Amounts go out with exactly 2 decimal places.
        """
        g = _generated()
        body = g.ComponentUsageCreateRequest(
            resource=resource_uuid,
            date=at,
            usages=[
                g.ComponentUsageItemRequest(type_=kind, amount=_amount_text(amount))
                for kind, amount in usages.items()
            ],
        )
        self._send(
            g.marketplace_component_usages_set_usage._get_kwargs(body=body),
            what=f"set usage of resource {resource_uuid}",
        )

    def component_usages(
        self, resource_uuid: UUID, billing_period: date
    ) -> list[WaldurComponentUsage]:
        """What Waldur holds for a resource's month (``billing_period``: its first day)."""
        build = _generated().marketplace_component_usages_list._get_kwargs
        return [
            component_usage_from(item)
            for item in self._pages(
                lambda **p: build(resource_uuid=resource_uuid, billing_period=billing_period, **p),
                what=f"usage of resource {resource_uuid}",
            )
        ]

    # --- orders and resources -----------------------------------------------------

    def orders(
        self, *, provider_uuid: UUID | None = None, offering_uuid: UUID | None = None
    ) -> list[MarketplaceOrder]:
        """The orders waiting for the provider: ``pending-provider`` and ``executing``."""
        g = _generated()
        states = [g.OrderState.PENDING_PROVIDER, g.OrderState.EXECUTING]
        filters: dict[str, Any] = {"state": states}
        if provider_uuid is not None:
            filters["provider_uuid"] = provider_uuid
        if offering_uuid is not None:
            filters["offering_uuid"] = offering_uuid
        return [
            order_from(item)
            for item in self._pages(
                g.marketplace_orders_list._get_kwargs, what="list orders", **filters
            )
        ]

    def order(self, uuid: UUID) -> MarketplaceOrder:
        kwargs = _generated().marketplace_orders_retrieve._get_kwargs(uuid)
        return order_from(self._send(kwargs, what=f"order {uuid}"))

    def order_approve(self, uuid: UUID) -> None:
        g = _generated()
        body = g.OrderApproveByProviderRequest()
        self._send(
            g.marketplace_orders_approve_by_provider._get_kwargs(uuid, body=body),
            what=f"approve order {uuid}",
        )

    def order_reject(self, uuid: UUID, *, comment: str) -> None:
        g = _generated()
        body = g.OrderProviderRejectionRequest(provider_rejection_comment=comment)
        self._send(
            g.marketplace_orders_reject_by_provider._get_kwargs(uuid, body=body),
            what=f"reject order {uuid}",
        )

    def order_set_executing(self, uuid: UUID) -> None:
        kwargs = _generated().marketplace_orders_set_state_executing._get_kwargs(uuid)
        self._send(kwargs, what=f"order {uuid} executing")

    def order_set_done(self, uuid: UUID) -> None:
        kwargs = _generated().marketplace_orders_set_state_done._get_kwargs(uuid)
        self._send(kwargs, what=f"order {uuid} done")

    def order_set_erred(self, uuid: UUID, *, message: str) -> None:
        g = _generated()
        body = g.OrderErrorDetailsRequest(error_message=message[:1000], error_traceback="")
        self._send(
            g.marketplace_orders_set_state_erred._get_kwargs(uuid, body=body),
            what=f"order {uuid} erred",
        )

    def order_set_backend_id(self, uuid: UUID, *, backend_id: str) -> None:
        g = _generated()
        body = g.OrderBackendIDRequest(backend_id=backend_id)
        self._send(
            g.marketplace_orders_set_backend_id._get_kwargs(uuid, body=body),
            what=f"order {uuid} backend id",
        )

    def provider_offering(self, uuid: UUID) -> ProviderOffering:
        kwargs = _generated().marketplace_provider_offerings_retrieve._get_kwargs(uuid)
        return provider_offering_from(self._send(kwargs, what=f"offering {uuid}"))

    def resource(self, uuid: UUID) -> ProviderResource:
        kwargs = _generated().marketplace_provider_resources_retrieve._get_kwargs(uuid)
        return provider_resource_from(self._send(kwargs, what=f"resource {uuid}"))

    def resources(self, *, provider_uuid: UUID) -> list[ProviderResource]:
        """Every resource of the provider's offerings (for pause/restore reconciling)."""
        build = _generated().marketplace_provider_resources_list._get_kwargs
        return [
            provider_resource_from(item)
            for item in self._pages(build, what="list resources", provider_uuid=provider_uuid)
        ]

    def resource_set_backend_id(self, uuid: UUID, *, backend_id: str) -> None:
        g = _generated()
        body = g.ResourceBackendIDRequest(backend_id=backend_id)
        self._send(
            g.marketplace_provider_resources_set_backend_id._get_kwargs(uuid, body=body),
            what=f"resource {uuid} backend id",
        )

    def resource_set_endpoints(self, uuid: UUID, *, endpoints: list[tuple[str, str]]) -> None:
        """``(name, url)`` pairs; URLs only, never a key."""
        g = _generated()
        body = g.ResourceEndpointsRequest(
            endpoints=[g.ResourceEndpointRequest(name=n, url=u) for n, u in endpoints]
        )
        self._send(
            g.marketplace_provider_resources_set_endpoints._get_kwargs(uuid, body=body),
            what=f"resource {uuid} endpoints",
        )

    def resource_api_keys(self, resource_uuid: UUID) -> list[ResourceApiKeyStatus]:
        build = _generated().marketplace_resource_api_keys_list._get_kwargs
        return [
            api_key_status_from(item)
            for item in self._pages(
                build, what=f"API keys of resource {resource_uuid}", resource_uuid=resource_uuid
            )
        ]

    def api_key_report_created(
        self, *, resource_uuid: UUID, client_id: str, api_key: str
    ) -> ResourceApiKeyStatus:
        """Hand a new key to Waldur (idempotent per resource + client_id)."""
        g = _generated()
        body = g.ResourceApiKeyReportCreatedRequest(
            resource=resource_uuid, client_id=client_id, api_key=api_key
        )
        kwargs = g.marketplace_resource_api_keys_report_created._get_kwargs(body=body)
        return api_key_status_from(
            self._send_secret(kwargs, api_key, what=f"report the key of resource {resource_uuid}")
        )

    def api_key_set(self, key_uuid: UUID, *, client_id: str, api_key: str) -> ResourceApiKeyStatus:
        """Replace the value of a key Waldur already has (after a re-issue)."""
        g = _generated()
        body = g.ResourceApiKeySetKeyRequest(api_key=api_key, client_id=client_id)
        kwargs = g.marketplace_resource_api_keys_set_key._get_kwargs(key_uuid, body=body)
        return api_key_status_from(self._send_secret(kwargs, api_key, what=f"set key {key_uuid}"))

    def _send_secret(self, kwargs: dict[str, Any], secret: str, *, what: str) -> Any:
        """``_send``, but an error never carries the secret: Waldur's answer to a refused
        call is dropped (it may quote the body, and cut short, a replace would miss it)."""
        try:
            return self._send(kwargs, what=what)
        except WaldurError as exc:
            if isinstance(exc, WaldurPermanent) and exc.status is not None:
                message = f"{what}: HTTP {exc.status} (answer not kept: it may quote the key)"
            else:
                message = str(exc).replace(secret, "***")
            raise type(exc)(message, status=exc.status) from None


def enabled() -> bool:
    return bool(settings.WALDUR_API_URL)


def client_from_settings() -> WaldurClient:
    """The configured client; call only when ``enabled()``."""
    return WaldurClient(
        settings.WALDUR_API_URL,
        settings.WALDUR_API_TOKEN,
        timeout=settings.WALDUR_TIMEOUT,
        max_concurrency=settings.WALDUR_MAX_CONCURRENCY,
    )

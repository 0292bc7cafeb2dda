"""Every list of the portal is paged: one item past a page makes a second page, reached
by a "Next page" link that keeps the other lists' pages and the filters."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from agent_registry.access.models import TrainingDocument
from agent_registry.access.services import access_create
from agent_registry.portal.views import common
from agent_registry.usage.models import DailyUsageSummary
from tests import factories
from tests.portal.conftest import browser_of

PAGE_SIZE = 3  # small pages: the same paging with few rows to make
ONE_PAGE_MORE = PAGE_SIZE + 1


@pytest.fixture(autouse=True)
def _small_pages(monkeypatch):
    monkeypatch.setattr(common, "PAGE_SIZE", PAGE_SIZE)


@pytest.fixture
def owner(world):
    return factories.member(world.provider, "owner", username="olga")


def _agents(world) -> list:
    project = world.agent.project
    world.provider.max_agents = 100
    world.provider.save(update_fields=["max_agents"])
    return [
        factories.make_agent(project=project, agent_id=f"bot-{n:02d}", name=f"Bot {n:02d}")
        for n in range(ONE_PAGE_MORE)
    ]


def _plans(world) -> None:
    for n in range(ONE_PAGE_MORE):
        factories.make_plan(world.agent, name=f"Plan {n:02d}")


def _members(world) -> None:
    for n in range(ONE_PAGE_MORE):
        factories.member(world.provider, "viewer", username=f"viewer-{n:02d}")


def _subscriptions(world) -> str:
    project = factories.ProjectFactory(tenant=world.provider, name="Buyers")
    for agent in _agents(world):
        plan = factories.make_plan(agent, name="Free", billing_model="free")
        access_create(agent=agent, plan=plan, project=project)
    return ""


def _documents(world) -> str:
    project = factories.ProjectFactory(tenant=world.provider, name="Own use")
    access = access_create(agent=world.agent, plan=world.free_plan, project=project).access
    for n in range(ONE_PAGE_MORE):
        TrainingDocument.objects.create(
            access=access,
            original_name=f"doc-{n:02d}.txt",
            content_type="text/plain",
            size_bytes=1,
            sha256=f"{n:064x}",
            file=f"training/{access.id}/doc-{n:02d}.txt",
        )
    return str(access.pk)


def _usage_days(world) -> None:
    project = factories.ProjectFactory(tenant=world.provider, name="Callers")
    now = datetime.now(UTC)
    for agent in _agents(world):
        plan = factories.make_plan(agent, name="Free", billing_model="free")
        access = access_create(agent=agent, plan=plan, project=project).access
        DailyUsageSummary.objects.create(
            tenant=world.provider,
            agent_instance=agent,
            access=access,
            date=now.date(),
            currency="USD",
            total_requests=1,
            successful_requests=1,
            computed_at=now,
        )


@pytest.mark.parametrize(
    ("make", "path", "param", "last_item"),
    [
        (_agents, "/portal/provider/", "page", "bot-03"),
        (_plans, "/portal/provider/agents/helper-bot/", "plans_page", "Plan 03"),
        (_members, "/portal/team/", "page", "viewer-03"),
        (_subscriptions, "/portal/subscriptions/", "page", None),
        (_documents, "/portal/subscriptions/{}/", "documents_page", None),
        (_usage_days, "/portal/usage/", "page", "<td>bot-03</td>"),
    ],
    ids=["provider agents", "plans", "team", "my agents", "documents", "usage days"],
)
def test_a_list_one_item_past_a_page_has_a_second_page(world, owner, make, path, param, last_item):
    made = make(world)
    browser = browser_of(owner)
    url = path.format(made or "")

    first = browser.get(url, {"keep": "1"}).content.decode()
    second = browser.get(url, {param: "2", "keep": "1"}).content.decode()

    assert "Page 1 of 2" in first
    assert f'keep=1&amp;{param}=2">Next page</a>' in first
    assert "Page 2 of 2" in second
    if last_item is not None:
        assert last_item not in first
        assert last_item in second


def test_the_marketplace_pages_its_agents(world):
    _agents(world)

    first = browser_of(factories.member(world.customer, "viewer")).get("/portal/", {"q": "bot"})

    assert "Page 1 of 2" in first.content.decode()
    assert "q=bot&amp;page=2" in first.content.decode()

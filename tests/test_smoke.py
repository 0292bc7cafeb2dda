def test_catalog_lists_active_agents_with_their_plans(anonymous_client, project):
    from tests.factories import make_agent, make_plan

    agent = make_agent(project=project, agent_id="summariser")
    make_plan(agent, name="Free", billing_model="free")

    response = anonymous_client.get("/api/v1/catalog/")

    assert response.status_code == 200
    [listed] = response.json()["results"]
    assert listed["agent_id"] == "summariser"
    assert [p["name"] for p in listed["plans"]] == ["Free"]

"""deploy/kubernetes/: every manifest valid for Kubernetes 1.31 (the schemas shipped by
kubernetes-validate, strict: an unknown or misspelt field is an error), no secret value
in any of them, probes on endpoints that answer, non-root read-only pods, and commands
that name real modules."""

from __future__ import annotations

import re
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from tests.deploy.commands import check_command

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "deploy" / "kubernetes"
# The oldest Kubernetes release still in upstream support when these were written.
KUBERNETES_VERSION = "1.31.0"
NOT_APPLIED = {"kustomization.yaml", "secret.example.yaml"}
SECRET_NAMES = re.compile(r"SECRET|PEPPER|TOKEN|PASSWORD|_KEYS?$|DATABASE_URL|BROKER_URL|REDIS_URL")


def kustomization() -> dict:
    return yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())


def resources() -> list[dict]:
    found = []
    for name in kustomization()["resources"]:
        found.extend(doc for doc in yaml.safe_load_all((MANIFESTS / name).read_text()) if doc)
    return found


def resource(kind: str, name: str) -> dict:
    matches = [r for r in resources() if r["kind"] == kind and r["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}"
    return matches[0]


def pod_specs() -> dict[str, dict]:
    specs = {}
    for item in resources():
        if item["kind"] in ("Deployment", "Job"):
            specs[item["metadata"]["name"]] = item["spec"]["template"]["spec"]
    return specs


def containers() -> list[dict]:
    return [c for spec in pod_specs().values() for c in spec["containers"]]


def test_kustomization_lists_every_manifest_but_the_secret_template():
    on_disk = {path.name for path in MANIFESTS.glob("*.yaml")} - NOT_APPLIED

    assert set(kustomization()["resources"]) == on_disk


@pytest.mark.parametrize("name", [*sorted(kustomization()["resources"]), "secret.example.yaml"])
def test_every_manifest_is_valid_for_the_stated_kubernetes_version(name):
    documents = [d for d in yaml.safe_load_all((MANIFESTS / name).read_text()) if d]

    assert documents
    for document in documents:
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def test_the_validator_refuses_a_misspelt_field():
    web = resource("Deployment", "agent-registry-web")
    web["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}

    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(web, KUBERNETES_VERSION, strict=True)


def test_no_applied_manifest_holds_a_secret_value():
    kinds = {item["kind"] for item in resources()}

    assert "Secret" not in kinds
    for container in containers():
        for variable in container.get("env", []):
            if SECRET_NAMES.search(variable["name"]):
                assert "value" not in variable, f"{variable['name']} inlined"
    config = resource("ConfigMap", "agent-registry-config")["data"]
    assert not [key for key in config if SECRET_NAMES.search(key)]


def test_the_secret_template_is_empty_and_every_pod_reads_it_by_reference():
    template = yaml.safe_load((MANIFESTS / "secret.example.yaml").read_text())
    settings_text = (ROOT / "agent_registry" / "settings.py").read_text()

    assert set(template["stringData"].values()) == {""}
    for key in template["stringData"]:
        assert f'"{key}"' in settings_text, f"{key} is not a setting"
    for name, spec in pod_specs().items():
        for container in spec["containers"]:
            refs = {
                kind: source[kind]["name"]
                for source in container["envFrom"]
                for kind in ("secretRef", "configMapRef")
                if kind in source
            }
            assert refs == {
                "secretRef": template["metadata"]["name"],
                "configMapRef": "agent-registry-config",
            }, name


def test_every_config_map_key_is_a_setting_or_a_server_option():
    config = resource("ConfigMap", "agent-registry-config")["data"]
    settings_text = (ROOT / "agent_registry" / "settings.py").read_text()
    # Read outside settings: WEB_CONCURRENCY by uvicorn, CELERY_METRICS_PORT by the
    # Celery worker's start-up (agent_registry/celery.py).
    celery_text = (ROOT / "agent_registry" / "celery.py").read_text()
    assert '"CELERY_METRICS_PORT"' in celery_text

    for key in set(config) - {"WEB_CONCURRENCY", "CELERY_METRICS_PORT"}:
        assert f'"{key}"' in settings_text, f"{key} is not read by settings.py"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("probe", "path"),
    [
        ("readinessProbe", "/health/ready"),
        ("livenessProbe", "/health/live"),
        ("startupProbe", "/health/live"),
    ],
)
def test_web_probes_ask_endpoints_that_answer(anonymous_client, probe, path):
    web = resource("Deployment", "agent-registry-web")["spec"]["template"]["spec"]
    container = web["containers"][0]
    check = container[probe]["httpGet"]
    host = {h["name"]: h["value"] for h in check["httpHeaders"]}["Host"]
    allowed = resource("ConfigMap", "agent-registry-config")["data"]["ALLOWED_HOSTS"].split(",")

    assert check["path"] == path
    assert check["port"] in {p["name"] for p in container["ports"]}
    assert host in allowed  # a pod's IP is not an allowed host: the probe names one
    assert anonymous_client.get(path, HTTP_HOST=host).status_code == 200


def test_every_pod_runs_non_root_on_a_read_only_root_file_system():
    dockerfile_user = re.search(r"^USER (\d+):(\d+)$", (ROOT / "Dockerfile").read_text(), re.M)

    for name, spec in pod_specs().items():
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True, name
        assert str(pod["runAsUser"]) == dockerfile_user.group(1), name
        assert pod["seccompProfile"]["type"] == "RuntimeDefault", name
        assert spec["automountServiceAccountToken"] is False, name
        for container in spec["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["capabilities"]["drop"] == ["ALL"], name
            # Writable scratch space where Python and Celery want it.
            mounts = {m["mountPath"] for m in container["volumeMounts"]}
            assert "/tmp" in mounts, name  # noqa: S108 (an emptyDir, the pod's own)


def test_every_container_has_requests_and_limits():
    for container in containers():
        assert {"cpu", "memory"} <= set(container["resources"]["requests"]), container["name"]
        assert "memory" in container["resources"]["limits"], container["name"]


def test_container_commands_name_real_modules_and_commands():
    specs = pod_specs()

    # web runs the image's CMD (uvicorn agent_registry.asgi:application), checked in
    # test_dockerfile.py; the others override it.
    assert "command" not in specs["agent-registry-web"]["containers"][0]
    for name in ("agent-registry-worker", "agent-registry-beat", "agent-registry-migrate"):
        check_command(specs[name]["containers"][0]["command"])
    assert specs["agent-registry-migrate"]["containers"][0]["command"][2] == "migrate"


def test_beat_is_a_single_replica_replaced_never_doubled():
    beat = resource("Deployment", "agent-registry-beat")

    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"] == {"type": "Recreate"}
    assert beat["spec"]["template"]["spec"]["containers"][0]["command"][3] == "beat"


def test_the_web_service_autoscaler_and_budget_point_at_the_web_pods():
    web = resource("Deployment", "agent-registry-web")
    labels = web["spec"]["template"]["metadata"]["labels"]
    port_names = {p["name"] for p in web["spec"]["template"]["spec"]["containers"][0]["ports"]}
    service = resource("Service", "agent-registry-web")
    hpa = resource("HorizontalPodAutoscaler", "agent-registry-web")
    pdb = resource("PodDisruptionBudget", "agent-registry-web")

    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["ports"][0]["targetPort"] in port_names
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "agent-registry-web",
    }
    assert hpa["spec"]["minReplicas"] >= 2
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["spec"]["minAvailable"] < hpa["spec"]["minReplicas"]


def test_network_policies_select_the_registry_pods():
    policies = [r for r in resources() if r["kind"] == "NetworkPolicy"]
    ingress = next(p for p in policies if "Ingress" in p["spec"]["policyTypes"])
    web_ports = {
        p["name"]
        for p in resource("Deployment", "agent-registry-web")["spec"]["template"]["spec"][
            "containers"
        ][0]["ports"]
    }

    assert ingress["spec"]["podSelector"]["matchLabels"] == {
        "app.kubernetes.io/name": "agent-registry"
    }
    assert [port["port"] for rule in ingress["spec"]["ingress"] for port in rule["ports"]] == [
        *web_ports
    ]

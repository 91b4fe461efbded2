"""The Helm chart, rendered and checked offline: Kubernetes schemas, topics, settings, ports, security, network.

No cluster here: every rendered object is validated against the Kubernetes OpenAPI
schemas of the oldest supported and a current version (kubernetes-validate, strict),
and the manifests are checked against the code they deploy — the topic registry, the
services' settings classes and consumer groups, their health routes. A renamed
setting, a new topic or a new consumer group that the chart does not follow fails here.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from pydantic import SecretStr
from pydantic_settings import BaseSettings

from okr_checkins.settings import CheckinsSettings
from okr_connectors.settings import ConnectorsSettings
from okr_contracts.topics import TOPICS, dead_letter_spec
from okr_drift.settings import DriftSettings
from okr_notifier.settings import NotifierSettings
from okr_rollup.settings import RollupSettings
from okr_runtime.settings import RuntimeSettings
from okr_web.settings import WebSettings

CHART = Path(__file__).resolve().parents[2] / "deploy" / "helm" / "okrstream"
SERVICES: dict[str, dict[str, Any]] = yaml.safe_load((CHART / "files" / "services.yaml").read_text())
SETTINGS: dict[str, type[BaseSettings]] = {
    "checkins": CheckinsSettings,
    "rollup": RollupSettings,
    "drift": DriftSettings,
    "connectors": ConnectorsSettings,
    "notifier": NotifierSettings,
    "web": WebSettings,
}
KUBERNETES_VERSIONS = ("1.29.0", "1.35.0")  # the chart's kubeVersion floor, and a current release
WORKLOADS = {"Deployment", "StatefulSet", "Job"}
# Environment variables a container may carry besides the services' own OKR_ settings.
PLATFORM_ENV = {"POD_NAME", "POD_NAMESPACE", "OTEL_RESOURCE_ATTRIBUTES"}

# Value sets covering every branch of the templates.
SCENARIOS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "job-topics-sharded-everything-on": {
        "kafka": {
            "topics": {"mode": "job"},
            "peers": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kafka"}}}],
        },
        "postgres": {"peers": [{"ipBlock": {"cidr": "10.20.0.0/16"}}]},
        "telemetry": {"otlpEndpoint": "http://otel-collector.observability.svc:4318"},
        "image": {"digest": "sha256:" + "a" * 64},
        "imagePullSecrets": [{"name": "registry"}],
        "networkPolicy": {"ingressFrom": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}]},
        "services": {
            "drift": {"shards": 3, "env": {"OKR_DRIFT_TICK_SECONDS": "30"}},
            "connectors": {
                "kpiEnvSecret": "okrstream-kpi-credentials",
                "files": {"mapping": "rules: []\n", "kpi": "sources: []\n"},
                "env": {"OKR_CONNECTORS_JIRA_URL": "https://example.atlassian.net", "OKR_CONNECTORS_JIRA_POLL_S": "300"},
            },
            "notifier": {"files": {"routing": "portfolios: {}\n"}, "env": {"OKR_NOTIFIER_SMTP_HOST": "smtp.example.com"}},
        },
    },
    "no-strimzi-no-autoscaling-no-policies": {
        "kafka": {"topics": {"mode": "none"}},
        "networkPolicy": {"enabled": False},
        "topologySpread": {"enabled": False},
        "services": {name: {"autoscaling": {"enabled": False}} for name in ("checkins", "rollup", "web")},
    },
}


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        merged[key] = deep_merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) else value
    return merged


@pytest.fixture(scope="module", params=sorted(SCENARIOS))
def scenario(request: pytest.FixtureRequest, render: Any) -> tuple[str, list[dict[str, Any]]]:
    name: str = request.param
    return name, render(SCENARIOS[name])


@pytest.fixture(scope="module")
def defaults(render: Any) -> list[dict[str, Any]]:
    return render()  # type: ignore[no-any-return]


def of_kind(objects: list[dict[str, Any]], *kinds: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] in kinds]


def component(obj: dict[str, Any]) -> str:
    return str(obj["metadata"]["labels"]["app.kubernetes.io/component"])


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    return workload["spec"]["template"]["spec"]  # type: ignore[no-any-return]


def service_containers(objects: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(component, container, pod spec) of every service workload."""
    return [(component(w), c, pod_spec(w)) for w in of_kind(objects, "Deployment", "StatefulSet") for c in pod_spec(w)["containers"]]


def aliases(settings: type[BaseSettings]) -> set[str]:
    return {str(f.validation_alias) for f in settings.model_fields.values() if f.validation_alias}


# --- schemas ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_rendered_object_is_valid_against_the_kubernetes_schemas(render: Any, version: str) -> None:
    for name, values in SCENARIOS.items():
        objects = render(values, kube_version=version)
        assert objects, name
        for obj in objects:
            if obj["kind"] == "KafkaTopic":
                continue  # a Strimzi resource, checked against the registry below
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(f"{name}: {obj['kind']}/{obj['metadata']['name']} is invalid for Kubernetes {version}: {exc.message}")


def test_the_schema_check_rejects_a_broken_object(defaults: list[dict[str, Any]]) -> None:
    deployment = dict(of_kind(defaults, "Deployment")[0])
    broken = deep_merge(deployment, {"spec": {"replicas": "two"}})
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSIONS[-1], strict=True)
    unknown_field = deep_merge(deployment, {"spec": {"replicaz": 2}})
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(unknown_field, KUBERNETES_VERSIONS[-1], strict=True)


def test_every_service_is_deployed_once(scenario: tuple[str, list[dict[str, Any]]]) -> None:
    _, objects = scenario
    deployed = sorted(component(w) for w in of_kind(objects, "Deployment", "StatefulSet"))
    assert deployed == sorted(SERVICES)
    modules = {component(w): pod_spec(w)["containers"][0]["args"] for w in of_kind(objects, "Deployment", "StatefulSet")}
    assert modules == {name: [facts["module"]] for name, facts in SERVICES.items()}


# --- topics ----------------------------------------------------------------------------------------------


def consumer_groups(shards: int) -> list[str]:
    """The groups the services run with the chart's settings, asked of the code itself."""
    groups = [str(CheckinsSettings().kpi_group), str(RollupSettings().group), str(NotifierSettings().group)]
    groups += [DriftSettings(shard_index=i, shard_count=shards).consumer_group for i in range(shards)]
    return sorted(groups)


@pytest.mark.parametrize("shards", [1, 3])
def test_strimzi_topics_are_the_registry_and_the_dead_letter_topics_of_every_group(render: Any, shards: int) -> None:
    objects = render({"services": {"drift": {"shards": shards}}, "kafka": {"topics": {"strimzi": {"cluster": "events"}}}})
    topics = {t["spec"]["topicName"]: t for t in of_kind(objects, "KafkaTopic")}
    expected = [*TOPICS, *(dead_letter_spec(g) for g in consumer_groups(shards))]
    assert sorted(topics) == sorted(spec.name for spec in expected)
    for spec in expected:
        topic = topics[spec.name]
        assert topic["apiVersion"] == "kafka.strimzi.io/v1"
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == "events"
        assert topic["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
        assert topic["spec"]["partitions"] == spec.partitions
        assert topic["spec"]["replicas"] == 3
        assert topic["spec"]["config"] == spec.config()
        assert topic["spec"]["config"]["min.insync.replicas"] == "2"
    assert topics["okr.scores.v1"]["spec"]["config"]["cleanup.policy"] == "compact"


@pytest.mark.parametrize("api_version", ["kafka.strimzi.io/v1", "kafka.strimzi.io/v1beta2"])
def test_kafka_topics_are_valid_against_strimzis_schemas(render: Any, strimzi_problems: Any, api_version: str) -> None:
    topics = of_kind(render({"kafka": {"topics": {"strimzi": {"apiVersion": api_version}}}}), "KafkaTopic")
    assert topics
    assert strimzi_problems(topics) == []
    broken = deep_merge(topics[0], {"spec": {"partitions": "twelve", "replicas": 0}})
    [problem] = strimzi_problems([broken])
    assert "spec/partitions must be integer" in problem
    assert "spec/replicas must be >= 1" in problem


def test_without_strimzi_a_hook_job_creates_the_same_topics_with_the_admin_client(render: Any) -> None:
    objects = render({"kafka": {"topics": {"mode": "job", "replicationFactor": 3}}, "services": {"drift": {"shards": 2}}})
    assert not of_kind(objects, "KafkaTopic")
    [job] = of_kind(objects, "Job")
    assert set(job["metadata"]["annotations"]["helm.sh/hook"].split(",")) == {"pre-install", "pre-upgrade"}
    [container] = pod_spec(job)["containers"]
    args = container["args"]
    assert args[:3] == ["okr_runtime.admin", "create-topics", "--replication-factor=3"]
    groups = sorted(a.removeprefix("--dead-letter-group=") for a in args[3:])
    assert groups == consumer_groups(2)
    env = {e["name"] for e in container["env"]}
    assert env <= aliases(RuntimeSettings)


def test_services_leave_topic_creation_to_the_deploy(scenario: tuple[str, list[dict[str, Any]]]) -> None:
    _, objects = scenario
    for name, container, _ in service_containers(objects):
        env = {e["name"]: e.get("value") for e in container["env"]}
        if SERVICES[name]["kafka"]:
            assert env["OKR_KAFKA_CREATE_TOPICS"] == "false", name


def test_the_chart_consumes_what_the_code_subscribes(subscriptions: dict[str, list[tuple[str, str]]]) -> None:
    for name, facts in SERVICES.items():
        topics = sorted({topic for topic, _ in subscriptions[name]})
        groups = sorted({group for _, group in subscriptions[name]})
        assert topics == sorted(facts["consumes"]), name
        if name == "drift":
            assert groups == [DriftSettings().consumer_group]
        else:
            assert groups == sorted(facts["groups"]), name


# --- autoscaling and availability ------------------------------------------------------------------------


def test_autoscalers_never_exceed_the_partitions_of_what_their_service_consumes(scenario: tuple[str, list[dict[str, Any]]]) -> None:
    _, objects = scenario
    partitions = {spec.name: spec.partitions for spec in TOPICS}
    for hpa in of_kind(objects, "HorizontalPodAutoscaler"):
        name = component(hpa)
        consumed = SERVICES[name]["consumes"]
        if consumed:
            assert hpa["spec"]["maxReplicas"] <= min(partitions[t] for t in consumed), name
        assert hpa["spec"]["scaleTargetRef"]["name"] == f"okr-okrstream-{name}"
    scaled = {component(h) for h in of_kind(objects, "HorizontalPodAutoscaler")}
    assert not scaled & {"drift", "connectors", "notifier"}  # one pod per shard / single-runner loops


def test_an_autoscaler_beyond_the_partitions_does_not_render(render_text: Any) -> None:
    done = render_text({"services": {"rollup": {"autoscaling": {"maxReplicas": 13}}}})
    assert done.returncode != 0
    assert "services.rollup.autoscaling.maxReplicas=13 exceeds 12" in done.stderr


def test_every_service_has_a_disruption_budget_and_spreads_over_zones_and_nodes(defaults: list[dict[str, Any]]) -> None:
    budgets = {component(p): p for p in of_kind(defaults, "PodDisruptionBudget")}
    assert sorted(budgets) == sorted(SERVICES)
    for workload in of_kind(defaults, "Deployment", "StatefulSet"):
        name = component(workload)
        assert budgets[name]["spec"]["selector"]["matchLabels"] == workload["spec"]["selector"]["matchLabels"]
        keys = {c["topologyKey"] for c in pod_spec(workload)["topologySpreadConstraints"]}
        assert keys == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}
    single = [w for w in of_kind(defaults, "Deployment") if w["spec"].get("replicas") == 1]
    assert {component(w) for w in single} == {"connectors", "notifier"}
    assert all(w["spec"]["strategy"]["type"] == "Recreate" for w in single)


def test_drift_runs_one_pod_per_shard_with_its_index_from_the_pod_ordinal(render: Any) -> None:
    [drift] = of_kind(render({"services": {"drift": {"shards": 4}}}), "StatefulSet")
    assert drift["spec"]["replicas"] == 4
    env = {e["name"]: e for e in pod_spec(drift)["containers"][0]["env"]}
    assert env["OKR_DRIFT_SHARD_COUNT"]["value"] == "4"
    assert env["OKR_DRIFT_SHARD_INDEX"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.labels['apps.kubernetes.io/pod-index']"


# --- settings, secrets, ports, probes --------------------------------------------------------------------


def env_problems(name: str, container: dict[str, Any]) -> list[str]:
    """What is wrong with a service container's environment against its settings class."""
    known = aliases(SETTINGS[name])
    problems = []
    for entry in container["env"]:
        var = entry["name"]
        if var.startswith("OKR_"):
            if var not in known:
                problems.append(f"{name}: {var} is not a setting of {SETTINGS[name].__name__}")
        elif var not in PLATFORM_ENV:
            problems.append(f"{name}: {var} is neither a setting nor a platform variable")
    return problems


def resolved_env(container: dict[str, Any]) -> dict[str, str]:
    """The environment as the pod would see it, with secrets and the downward API filled in with stand-in values."""
    env = {}
    for entry in container["env"]:
        if "value" in entry:
            env[entry["name"]] = entry["value"]
            continue
        source = entry["valueFrom"]
        if "secretKeyRef" in source:
            env[entry["name"]] = "postgresql://okr:secret@db:5432/okr" if entry["name"] == "OKR_POSTGRES_DSN" else "from-a-secret"
        elif "pod-index" in source["fieldRef"]["fieldPath"]:
            env[entry["name"]] = "0"
        else:
            env[entry["name"]] = "okr-pod"
    return env


def test_every_environment_variable_is_a_setting_of_the_service_and_they_load(
    scenario: tuple[str, list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, objects = scenario
    for name, container, _ in service_containers(objects):
        assert env_problems(name, container) == []
        required_files = {alias for alias in aliases(SETTINGS[name]) if alias.endswith("_TOKENS_FILE")}
        assert required_files <= {e["name"] for e in container["env"]}, f"{name}: its API needs its tokens file"
        with monkeypatch.context() as patch:
            for var, value in resolved_env(container).items():
                patch.setenv(var, value)
            settings: Any = SETTINGS[name]()
        assert settings.http_host == "0.0.0.0"
        assert settings.http_port == 8000
        if SERVICES[name]["postgres"]:
            assert settings.event_store == "postgres"
            assert settings.postgres_schema == "okrstream"


def test_a_renamed_setting_fails_the_check(defaults: list[dict[str, Any]], render: Any) -> None:
    [(name, container, _)] = [c for c in service_containers(defaults) if c[0] == "checkins"]
    renamed = {**container, "env": [*container["env"], {"name": "OKR_CHECKINS_RELAY_BATCHES", "value": "100"}]}
    assert env_problems(name, renamed) == ["checkins: OKR_CHECKINS_RELAY_BATCHES is not a setting of CheckinsSettings"]
    # The same through values: an operator's typo in services.<name>.env is caught too.
    objects = render({"services": {"notifier": {"env": {"OKR_NOTIFIER_SMTP_HOSTNAME": "smtp"}}}})
    problems = [p for n, c, _ in service_containers(objects) for p in env_problems(n, c)]
    assert problems == ["notifier: OKR_NOTIFIER_SMTP_HOSTNAME is not a setting of NotifierSettings"]


def secret_settings(settings: type[BaseSettings]) -> set[str]:
    secret = {
        str(f.validation_alias) for f in settings.model_fields.values() if SecretStr in getattr(f.annotation, "__args__", (f.annotation,))
    }
    return secret | {"OKR_POSTGRES_DSN"}


def test_secrets_are_referenced_never_inlined(scenario: tuple[str, list[dict[str, Any]]]) -> None:
    _, objects = scenario
    assert not of_kind(objects, "Secret")
    for name, container, _ in service_containers(objects):
        for entry in container["env"]:
            if entry["name"] in secret_settings(SETTINGS[name]):
                assert "value" not in entry, f"{name}: {entry['name']}"
                assert "secretKeyRef" in entry["valueFrom"], f"{name}: {entry['name']}"
    for config in of_kind(objects, "ConfigMap"):
        text = yaml.safe_dump(config.get("data", {}))
        assert not re.search(r"(?i)password|secret|token", text), config["metadata"]["name"]


def test_files_named_by_settings_are_mounted(render: Any) -> None:
    objects = render(SCENARIOS["job-topics-sharded-everything-on"])
    for name, container, spec in service_containers(objects):
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        volumes = {v["name"] for v in spec["volumes"]}
        for var, value in resolved_env(container).items():
            if var.endswith("_FILE"):
                directory = str(Path(value).parent)
                assert mounts.get(directory) in volumes, f"{name}: {var}={value} is not on a mounted volume"


def test_ports_probes_and_services_agree_with_the_health_routes(defaults: list[dict[str, Any]]) -> None:
    from okr_runtime.health import health_router

    routes = {route.path for route in health_router({}).routes}  # type: ignore[attr-defined]
    services = {component(s): s for s in of_kind(defaults, "Service") if not s["metadata"]["name"].endswith("-shards")}
    for name, container, _ in service_containers(defaults):
        [port] = container["ports"]
        assert port == {"name": "http", "containerPort": 8000, "protocol": "TCP"}
        assert resolved_env(container)["OKR_HTTP_PORT"] == str(port["containerPort"])
        assert container["livenessProbe"]["httpGet"] == {"path": "/health/live", "port": "http"}
        assert container["readinessProbe"]["httpGet"] == {"path": "/health/ready", "port": "http"}
        assert {"/health/live", "/health/ready"} <= routes
        assert services[name]["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]


def test_callers_reach_services_by_the_urls_in_their_settings(defaults: list[dict[str, Any]]) -> None:
    services = {s["metadata"]["name"] for s in of_kind(defaults, "Service")}
    for name, container, _ in service_containers(defaults):
        for var, value in resolved_env(container).items():
            if var.endswith("_URL") and value.startswith("http://okr-okrstream-"):
                callee = value.removeprefix("http://okr-okrstream-")
                assert f"okr-okrstream-{callee}" in services, f"{name}: {var}"
                assert name in SERVICES[callee]["calledBy"], f"{name} calls {callee} but is not in its calledBy"


# --- security and network --------------------------------------------------------------------------------


def test_pods_run_as_non_root_on_a_read_only_filesystem_without_capabilities(scenario: tuple[str, list[dict[str, Any]]]) -> None:
    _, objects = scenario
    for workload in of_kind(objects, *WORKLOADS):
        spec = pod_spec(workload)
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert spec["automountServiceAccountToken"] is False
        for container in spec["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True
            assert context["allowPrivilegeEscalation"] is False
            assert context["capabilities"] == {"drop": ["ALL"]}
            assert {"requests", "limits"} <= set(container["resources"]), workload["metadata"]["name"]
            assert {"cpu", "memory"} <= set(container["resources"]["limits"])
            tmp = [m for m in container["volumeMounts"] if m["mountPath"] == "/tmp"]
            assert tmp, f"{workload['metadata']['name']}: no writable /tmp"


def rules_to(policy: dict[str, Any], callee: str) -> bool:
    return any(
        peer.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/component") == callee
        for rule in policy["spec"].get("egress", [])
        for peer in rule.get("to", [])
    )


def rules_from(policy: dict[str, Any], caller: str) -> bool:
    return any(
        peer.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/component") == caller
        for rule in policy["spec"].get("ingress", [])
        for peer in rule.get("from", [])
    )


def test_network_policies_isolate_every_pod_and_allow_only_the_calls_the_settings_make(defaults: list[dict[str, Any]]) -> None:
    policies = {component(p): p for p in of_kind(defaults, "NetworkPolicy")}
    for workload in of_kind(defaults, "Deployment", "StatefulSet"):
        name = component(workload)
        policy = policies[name]
        assert policy["spec"]["podSelector"]["matchLabels"] == workload["spec"]["selector"]["matchLabels"]
        assert sorted(policy["spec"]["policyTypes"]) == ["Egress", "Ingress"]
    for caller in SERVICES:
        for callee, facts in SERVICES.items():
            allowed = caller in facts["calledBy"]
            assert rules_to(policies[caller], callee) == allowed, f"{caller} → {callee}"
            assert rules_from(policies[callee], caller) == allowed, f"{caller} → {callee}"
    # Only the services that talk to the outside get HTTPS out of the cluster.
    outside = {
        name
        for name, policy in policies.items()
        for rule in policy["spec"]["egress"]
        if any("ipBlock" in peer for peer in rule.get("to", [])) and {"port": 443, "protocol": "TCP"} in rule["ports"]
    }
    assert outside == {"connectors", "notifier"}
    # Nothing from outside the release until an operator names the ingress controller.
    assert all(rules_from(policies[n], "") is False for n in SERVICES)
    assert not any("namespaceSelector" in peer for p in policies.values() for r in p["spec"]["ingress"] for peer in r["from"])


def test_exposed_services_admit_the_named_ingress_peers(render: Any) -> None:
    peer = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}
    objects = render({"networkPolicy": {"ingressFrom": [peer], "exposed": ["web", "connectors"]}})
    admitted = {component(p) for p in of_kind(objects, "NetworkPolicy") for r in p["spec"]["ingress"] if peer in r["from"]}
    assert admitted == {"web", "connectors"}


def test_helm_lint_is_clean_in_strict_mode(helm: Path) -> None:
    import subprocess

    done = subprocess.run([str(helm), "lint", "--strict", str(CHART)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"kafka": {"topics": {"mode": "kraft"}}}, "at '/kafka/topics/mode': value must be one of 'strimzi', 'job', 'none'"),
        ({"services": {"drift": {"shard": 2}}}, "at '/services/drift': additional properties 'shard' not allowed"),
        ({"services": {"connectors": {"replicas": 2}}}, "at '/services/connectors/replicas'"),
        ({"services": {"web": {"env": {"WEB_PORT": "1"}}}}, "'WEB_PORT' does not match pattern '^OKR_[A-Z0-9_]+$'"),
        ({"postgres": {"schema": "Okr-Stream"}}, "at '/postgres/schema'"),
        ({"kafka": {"bootstrap": "kafka"}}, "at '/kafka/bootstrap'"),
    ],
)
def test_bad_values_are_refused_with_the_key_named(render_text: Any, values: dict[str, Any], message: str) -> None:
    done = render_text(values)
    assert done.returncode != 0
    assert message in done.stderr, done.stderr

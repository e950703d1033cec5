"""deploy/kubernetes: manifests that parse, name real settings and scripts, and probe right."""

from __future__ import annotations

import shutil
import subprocess
import tomllib
from typing import Any

import pytest
import yaml

from services.notifier.settings import NotifierSettings
from services.recovery.settings import RecoverySettings
from tests.unit.deploy.manifests import (
    K8S,
    REPO,
    console_scripts,
    container_env,
    containers,
    default_port,
    env_file,
    k8s_docs,
    k8s_files,
    k8s_object,
    k8s_objects,
    kustomization,
    pod_specs,
    programs_in,
    secret_keys,
    settings_env_names,
)

DEPLOYMENTS = ("recovery-service", "notifier-service", "delivery-worker")


def _container(deployment: str) -> dict[str, Any]:
    containers: list[dict[str, Any]] = k8s_object("Deployment", deployment)["spec"]["template"]["spec"]["containers"]
    (container,) = containers
    return container


def test_every_manifest_parses_as_kubernetes_objects():
    assert k8s_files()
    for path in k8s_files():
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
        assert docs, path
        for doc in docs:
            assert doc.get("apiVersion"), path
            assert doc.get("kind"), path


def test_kustomization_names_only_files_that_exist():
    kust = kustomization()
    for resource in kust["resources"]:
        assert (K8S / resource).is_file(), resource
    for gen in kust["configMapGenerator"]:
        for name in [*gen.get("envs", []), *(f.split("=")[-1] for f in gen.get("files", []))]:
            assert (K8S / name).is_file(), name
    # The example Secret holds placeholders: it must never be applied by accident.
    assert "secret.example.yaml" not in kust["resources"]


def test_the_objects_a_deployment_needs_are_there():
    kinds = {(d["kind"], d["metadata"]["name"]) for d in k8s_docs() if d["kind"] != "Kustomization"}
    assert ("Namespace", "service-recovery") in kinds
    assert {("Deployment", d) for d in DEPLOYMENTS} <= kinds
    assert ("PodDisruptionBudget", "recovery-service") in kinds
    assert ("Service", "recovery-service") in kinds
    assert ("Job", "service-recovery-init") in kinds
    assert ("Secret", "service-recovery-secrets") in kinds


def test_settings_and_secret_keys_are_settings_fields():
    known = settings_env_names()
    assert not set(env_file(K8S / "settings.env")) - known
    assert not secret_keys("service-recovery-secrets") - known


def test_every_container_environment_variable_is_a_settings_field():
    known = settings_env_names()
    for workload, spec in pod_specs():
        for container in containers(spec):
            unknown = set(container_env(container)) - known
            assert not unknown, f"{workload}/{container['name']} sets {sorted(unknown)}"


def test_every_container_is_told_where_kafka_and_postgres_are():
    for workload, spec in pod_specs():
        for container in containers(spec):
            env = container_env(container)
            assert "KAFKA_BOOTSTRAP_SERVERS" in env, workload
            ref = env["DATABASE_URL"]["valueFrom"]["secretKeyRef"]
            assert ref["key"] in secret_keys(ref["name"]), workload


def test_secret_references_name_keys_the_example_secret_has():
    for workload, spec in pod_specs():
        for container in containers(spec):
            for var in container.get("env", []):
                ref = var.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["key"] in secret_keys(ref["name"]), (workload, var["name"])


def test_every_command_is_a_console_script():
    for workload, spec in pod_specs():
        for container in containers(spec):
            command = [*container.get("command", []), *container.get("args", [])]
            assert command, f"{workload}/{container['name']} relies on the image default"
            for program in programs_in(command):
                assert program in console_scripts(), (workload, program)


def test_the_init_job_migrates_before_it_creates_topics():
    spec = k8s_object("Job", "service-recovery-init")["spec"]["template"]["spec"]
    assert [c["command"] for c in spec["initContainers"]] == [["recoveryctl", "migrate", "--grant-login"]]
    assert [c["command"] for c in spec["containers"]] == [["recoveryctl", "topics", "create"]]


def test_only_the_migrations_get_the_owner_of_the_schema():
    # The services connect as the restricted role; the owner's URL is the migrations' alone.
    for workload, spec in pod_specs():
        for container in containers(spec):
            owner = "DATABASE_MIGRATION_URL" in container_env(container)
            assert owner == (container.get("command") == ["recoveryctl", "migrate", "--grant-login"]), workload


@pytest.mark.parametrize("deployment", DEPLOYMENTS)
def test_probes_hit_the_settings_default_port(deployment):
    container = _container(deployment)
    port = default_port(deployment)
    (http,) = [p for p in container["ports"] if p["name"] == "http"]
    assert http["containerPort"] == port
    env = container_env(container)
    variable = "DELIVERY_HTTP_PORT" if deployment == "delivery-worker" else "HTTP_PORT"
    assert int(env[variable]["value"]) == port
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    template = k8s_object("Deployment", deployment)["spec"]["template"]
    annotations = template["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(port)


def test_recovery_runs_at_least_two_replicas():
    assert k8s_object("Deployment", "recovery-service")["spec"]["replicas"] >= 2


def test_the_partitions_leave_work_for_every_recovery_replica():
    partitions = int(env_file(K8S / "settings.env")["TOPIC_PARTITIONS"])
    assert partitions >= k8s_object("Deployment", "recovery-service")["spec"]["replicas"]


def test_the_disruption_budget_keeps_a_recovery_pod_and_selects_only_those():
    pdb = k8s_object("PodDisruptionBudget", "recovery-service")
    assert pdb["spec"]["minAvailable"] >= 1
    selector = pdb["spec"]["selector"]["matchLabels"]
    for deployment in k8s_objects("Deployment"):
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        selected = selector.items() <= labels.items()
        assert selected == (deployment["metadata"]["name"] == "recovery-service")
    recovery = k8s_object("Deployment", "recovery-service")
    assert recovery["spec"]["selector"]["matchLabels"] == selector


def test_the_ops_api_service_reaches_the_recovery_pods():
    service = k8s_object("Service", "recovery-service")
    labels = k8s_object("Deployment", "recovery-service")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["http"]


def test_the_policy_file_is_mounted_where_recovery_policy_file_points():
    container = _container("recovery-service")
    path = container_env(container)["RECOVERY_POLICY_FILE"]["value"]
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == "policy"]
    assert path == f"{mount['mountPath']}/policy.toml"
    volumes = k8s_object("Deployment", "recovery-service")["spec"]["template"]["spec"]["volumes"]
    (volume,) = [v for v in volumes if v["name"] == "policy"]
    assert volume["configMap"]["name"] == "recovery-policy"
    policy = tomllib.loads((K8S / "policy.toml").read_text())
    assert policy["id"]
    assert policy["version"]


def test_tls_files_named_in_settings_are_mounted():
    settings = env_file(K8S / "settings.env")
    files = [settings["KAFKA_SSL_CAFILE"], settings["DATABASE_SSL_ROOTCERT"]]
    tls_keys = secret_keys("service-recovery-tls")
    for workload, spec in pod_specs():
        for container in containers(spec):
            (mount,) = [m for m in container["volumeMounts"] if m["name"] == "tls"]
            for path in files:
                directory, _, key = path.rpartition("/")
                assert directory == mount["mountPath"], workload
                assert key in tls_keys


def test_settings_parse_with_tls_sasl_acks_all_and_idempotence():
    values: dict[str, Any] = {k.lower(): v for k, v in env_file(K8S / "settings.env").items()}
    for cls in (RecoverySettings, NotifierSettings):
        settings = cls(**values)
        assert settings.kafka_security_protocol == "SASL_SSL"
        assert settings.kafka_sasl_mechanism == "SCRAM-SHA-512"
        assert settings.kafka_enable_idempotence is True
        assert settings.kafka_acks == "all"
        assert settings.topic_replication_factor >= 3


def test_pods_run_non_root_read_only_with_limits():
    for workload, spec in pod_specs():
        assert spec["securityContext"]["runAsNonRoot"] is True, workload
        assert spec["securityContext"]["runAsUser"] != 0, workload
        assert spec["automountServiceAccountToken"] is False, workload
        for container in containers(spec):
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True, workload
            assert security["allowPrivilegeEscalation"] is False, workload
            assert security["capabilities"]["drop"] == ["ALL"], workload
            assert {"cpu", "memory"} <= set(container["resources"]["requests"]), workload
            assert {"cpu", "memory"} <= set(container["resources"]["limits"]), workload
            # Read-only root: /tmp is the one writable place.
            assert any(m["mountPath"] == "/tmp" for m in container["volumeMounts"]), workload


def test_deployments_give_time_for_a_graceful_shutdown():
    for deployment in k8s_objects("Deployment"):
        spec = deployment["spec"]["template"]["spec"]
        assert spec["terminationGracePeriodSeconds"] >= 30, deployment["metadata"]["name"]


def test_kustomize_renders_with_generated_config_maps_wired_in():
    if shutil.which("kubectl") is None:
        pytest.fail("kubectl is needed to render the kustomization: install the Kubernetes client (kubectl)",
                    pytrace=False)  # fmt: skip
    rendered = subprocess.run(
        ["kubectl", "kustomize", str(K8S)], capture_output=True, text=True, check=True, cwd=REPO
    ).stdout
    docs = [d for d in yaml.safe_load_all(rendered) if d]
    configmaps = {d["metadata"]["name"] for d in docs if d["kind"] == "ConfigMap"}
    for doc in docs:
        assert doc["kind"] == "Namespace" or doc["metadata"]["namespace"] == "service-recovery"
        if doc["kind"] in ("Deployment", "Job"):
            spec = doc["spec"]["template"]["spec"]
            for container in containers(spec):
                assert container["image"].startswith("registry.example.com/service-recovery:")
                for source in container.get("envFrom", []):
                    assert source["configMapRef"]["name"] in configmaps
            for volume in spec.get("volumes", []):
                if "configMap" in volume:
                    assert volume["configMap"]["name"] in configmaps

"""Reading the deployment artefacts for the tests: compose, Kubernetes, Dockerfile, settings.

No Docker or cluster is needed; these helpers parse the files as a reviewer would.
"""

from __future__ import annotations

import re
import shlex
import tomllib
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from services.notifier.settings import NotifierSettings
from services.recovery.settings import RecoverySettings

REPO = Path(__file__).resolve().parents[3]
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "kubernetes"
COMPOSE_FILE = DEPLOY / "docker-compose.yml"
DOCKERFILE = DEPLOY / "Dockerfile"
APP_IMAGE = "service-recovery"

# Which settings class (and port field) each program reads.
PROGRAM_SETTINGS: dict[str, tuple[type[RecoverySettings] | type[NotifierSettings], str]] = {
    "recovery-service": (RecoverySettings, "http_port"),
    "notifier-service": (NotifierSettings, "http_port"),
    "delivery-worker": (NotifierSettings, "delivery_http_port"),
}


def settings_env_names() -> set[str]:
    """Every environment variable some settings class reads (field names, upper-cased)."""
    return {n.upper() for n in RecoverySettings.model_fields} | {n.upper() for n in NotifierSettings.model_fields}


def default_port(program: str) -> int:
    cls, field = PROGRAM_SETTINGS[program]
    default = cls.model_fields[field].default
    assert isinstance(default, int)
    return default


@cache
def console_scripts() -> frozenset[str]:
    with (REPO / "pyproject.toml").open("rb") as fh:
        return frozenset(tomllib.load(fh)["project"]["scripts"])


@cache
def package_version() -> str:
    with (REPO / "pyproject.toml").open("rb") as fh:
        version: str = tomllib.load(fh)["project"]["version"]
    return version


def programs_in(command: list[str] | str) -> list[str]:
    """The programs a command runs: itself, or each step of an ``sh -c 'a && b'``."""
    argv = shlex.split(command) if isinstance(command, str) else list(command)
    if len(argv) >= 3 and Path(argv[0]).name in ("sh", "bash") and argv[1] == "-c":
        steps = re.split(r"&&|\|\||;", argv[2])
        return [shlex.split(step)[0] for step in steps if step.strip()]
    return [argv[0]]


# --------------------------------------------------------------------------- compose


@cache
def compose() -> dict[str, Any]:
    doc = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(doc, dict)
    return doc


def app_services() -> dict[str, dict[str, Any]]:
    """The compose services that run this project's image."""
    return {
        name: svc for name, svc in compose()["services"].items() if str(svc.get("image", "")).split(":")[0] == APP_IMAGE
    }


_INTERPOLATION = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")


def interpolate(value: object) -> str:
    """Compose ``${VAR:-default}`` with nothing set in the environment: the default."""
    return _INTERPOLATION.sub(lambda m: m.group(2) or "", str(value))


def compose_env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # the KEY=VALUE list form
        env = dict(item.split("=", 1) for item in env)
    return {k: interpolate(v) for k, v in env.items()}


# --------------------------------------------------------------------------- kubernetes


def k8s_files() -> list[Path]:
    return sorted(K8S.glob("*.yaml"))


@cache
def k8s_docs() -> tuple[dict[str, Any], ...]:
    docs: list[dict[str, Any]] = []
    for path in k8s_files():
        docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d is not None)
    return tuple(docs)


def k8s_objects(kind: str) -> list[dict[str, Any]]:
    return [d for d in k8s_docs() if d.get("kind") == kind]


def k8s_object(kind: str, name: str) -> dict[str, Any]:
    (found,) = [d for d in k8s_objects(kind) if d["metadata"]["name"] == name]
    return found


def pod_specs() -> Iterator[tuple[str, dict[str, Any]]]:
    """(workload name, pod spec) of every Deployment and Job."""
    for kind in ("Deployment", "Job"):
        for obj in k8s_objects(kind):
            yield obj["metadata"]["name"], obj["spec"]["template"]["spec"]


def containers(pod_spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [*pod_spec.get("initContainers", []), *pod_spec["containers"]]


def env_file(path: Path) -> dict[str, str]:
    """A kustomize ``envs:`` file: KEY=VALUE lines, # comments."""
    pairs: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            pairs[key.strip()] = value.strip()
    return pairs


def kustomization() -> dict[str, Any]:
    doc = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert isinstance(doc, dict)
    return doc


def generated_configmap_files(name: str) -> list[Path]:
    (gen,) = [g for g in kustomization()["configMapGenerator"] if g["name"] == name]
    files = [*gen.get("envs", []), *(f.split("=")[-1] for f in gen.get("files", []))]
    return [K8S / f for f in files]


def container_env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """What each variable is set to in a container: the plain settings first, then env."""
    env: dict[str, dict[str, Any]] = {}
    for source in container.get("envFrom", []):
        ref = source.get("configMapRef") or source.get("secretRef")
        assert ref is not None
        if "configMapRef" in source:
            for path in generated_configmap_files(ref["name"]):
                env.update({k: {"value": v} for k, v in env_file(path).items()})
        else:
            env.update({k: {"secret": ref["name"]} for k in secret_keys(ref["name"])})
    for var in container.get("env", []):
        env[var["name"]] = var
    return env


def secret_keys(name: str) -> set[str]:
    docs = yaml.safe_load_all((K8S / "secret.example.yaml").read_text())
    (secret,) = [d for d in docs if d and d["metadata"]["name"] == name]
    return set(secret.get("stringData", {})) | set(secret.get("data", {}))


# --------------------------------------------------------------------------- Dockerfile


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        instruction, _, args = full.partition(" ")
        out.append((instruction.upper(), args.strip()))
    return out

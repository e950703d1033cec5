"""deploy/Dockerfile and its health check: non-root, multi-stage, the right default program."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from types import ModuleType

import pytest

from tests.unit.deploy.manifests import (
    DEPLOY,
    DOCKERFILE,
    REPO,
    console_scripts,
    default_port,
    dockerfile_instructions,
)


def _values(instruction: str) -> list[str]:
    return [args for name, args in dockerfile_instructions() if name == instruction]


def _final_stage() -> list[tuple[str, str]]:
    instructions = dockerfile_instructions()
    last_from = max(i for i, (name, _) in enumerate(instructions) if name == "FROM")
    return instructions[last_from:]


def test_the_image_is_multi_stage_on_python_3_11_slim():
    stages = _values("FROM")
    assert len(stages) >= 2
    (default_base,) = [a for a in _values("ARG") if a.startswith("PYTHON_IMAGE=")]
    assert default_base.startswith("PYTHON_IMAGE=python:3.11-slim")
    assert any("AS builder" in s for s in stages)
    copies = [args for name, args in _final_stage() if name == "COPY"]
    assert any(args.startswith("--from=builder") for args in copies)


def test_the_runtime_runs_as_a_non_root_user():
    users = [args for name, args in _final_stage() if name == "USER"]
    assert users, "no USER in the runtime stage: the image would run as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    # Numeric, so Kubernetes' runAsNonRoot can check it without /etc/passwd.
    assert user.isdigit()


def test_the_healthcheck_is_the_shipped_script():
    (healthcheck,) = [args for name, args in _final_stage() if name == "HEALTHCHECK"]
    assert "healthcheck.py" in healthcheck
    assert "curl" not in healthcheck
    assert "wget" not in healthcheck
    assert any("deploy/healthcheck.py" in args for name, args in _final_stage() if name == "COPY")


def test_the_default_command_is_recovery_service_and_every_program_is_a_script():
    (cmd,) = [args for name, args in _final_stage() if name == "CMD"]
    assert json.loads(cmd) == ["recovery-service"]
    for entrypoint in [args for name, args in _final_stage() if name == "ENTRYPOINT"]:
        assert json.loads(entrypoint)[0] in console_scripts()


def test_the_version_label_comes_from_a_build_arg_checked_against_pyproject():
    labels = " ".join(_values("LABEL"))
    assert 'org.opencontainers.image.version="${VERSION}"' in labels
    assert "importlib.metadata" in DOCKERFILE.read_text()  # the builder compares the two
    script = (DEPLOY / "build-image.sh").read_text()
    assert "pyproject.toml" in script
    assert "VERSION=" in script


def test_production_images_leave_out_the_local_extra():
    text = "\n".join(args for name, args in dockerfile_instructions() if name == "RUN")
    assert "[local]" not in text
    assert "[dev]" not in text
    assert "pip install --no-deps /dist/*.whl" in text


def test_the_build_context_lets_in_what_the_dockerfile_copies():
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    assert ignore[0] == "*" or "*" in ignore
    for name, args in dockerfile_instructions():
        if name == "COPY" and not args.startswith("--from"):
            for source in args.split()[:-1]:
                assert source.rstrip("/") in allowed, source
                assert (REPO / source).exists(), source


# --------------------------------------------------------------------------- healthcheck.py


def _load_healthcheck() -> ModuleType:
    spec = importlib.util.spec_from_file_location("deploy_healthcheck", DEPLOY / "healthcheck.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _Probe(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def probe_server() -> Iterator[HTTPServer]:
    server = HTTPServer(("127.0.0.1", 0), _Probe)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_healthcheck_tries_the_configured_ports_then_every_default():
    hc = _load_healthcheck()
    assert hc.candidate_ports({}) == [8080, 8081, 8082]
    configured = hc.candidate_ports({"HTTP_PORT": "9000", "DELIVERY_HTTP_PORT": "8082"})
    assert configured[:2] == [9000, 8082]
    programs = ("recovery-service", "notifier-service", "delivery-worker")
    defaults = {default_port(p) for p in programs}
    assert defaults <= set(hc.DEFAULT_PORTS)


def test_healthcheck_passes_when_healthz_answers(probe_server):
    port = probe_server.server_address[1]
    result = subprocess.run(
        [sys.executable, str(DEPLOY / "healthcheck.py")],
        env={"HTTP_PORT": str(port)},
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_healthcheck_fails_on_an_error_status_or_a_closed_port(probe_server, monkeypatch):
    hc = _load_healthcheck()
    port = probe_server.server_address[1]
    monkeypatch.setattr(_Probe, "status", 503)
    assert hc.healthy(port) is False
    probe_server.shutdown()
    probe_server.server_close()
    assert hc.healthy(port) is False

"""Deployment files: each passes its linter or validator, and agrees with the settings."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from {{cookiecutter.package_name}}.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "deploy" / "k8s"
KUBERNETES_VERSION = "1.33.0"
BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    path = BIN / name
    found = str(path) if path.exists() else shutil.which(name)
    assert found, f"{name} is missing: install the project's dev extra (pip install -e '.[dev]')"
    return found


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, cwd=ROOT, timeout=120)


def load_all(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def test_dockerfile_passes_hadolint() -> None:
    result = run(tool("hadolint"), "--failure-threshold", "info", "Dockerfile")
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_runs_as_non_root_with_healthcheck_and_exec_cmd() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert text.count("FROM ") >= 2, "multi-stage build expected"
    assert "USER 10001" in text
    assert "HEALTHCHECK" in text
    assert "STOPSIGNAL SIGTERM" in text
    cmd = [line for line in text.splitlines() if line.startswith("CMD ")]
    assert cmd and cmd[-1].startswith('CMD ["'), "CMD must be in exec form"


def test_compose_file_matches_the_compose_spec() -> None:
    result = run(
        tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", "compose.yaml"
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_waits_longer_than_the_shutdown_grace() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    api = compose["services"]["api"]
    grace = int(api["environment"]["SHUTDOWN_GRACE_SECONDS"])
    assert int(api["stop_grace_period"].rstrip("s")) > grace
    assert api["healthcheck"]["test"]
    assert api["restart"] == "unless-stopped"


def test_kubernetes_manifests_validate() -> None:
    files = sorted(str(p) for p in K8S.glob("*.yaml"))
    assert len(files) >= 6
    result = run(tool("kubernetes-validate"), "--strict", "-k", KUBERNETES_VERSION, *files)
    assert result.returncode == 0, result.stdout + result.stderr


def test_kubernetes_validation_catches_mistakes(tmp_path: Path) -> None:
    broken = load_all(K8S / "deployment.yaml")[0]
    broken["spec"]["template"]["spec"]["containers"][0]["readinessProbes"] = {}
    target = tmp_path / "broken.yaml"
    target.write_text(yaml.safe_dump(broken))
    result = run(tool("kubernetes-validate"), "--strict", "-k", KUBERNETES_VERSION, str(target))
    assert result.returncode != 0


def test_pod_outlives_the_stream_grace_period() -> None:
    config = load_all(K8S / "configmap.yaml")[0]["data"]
    # The values are valid, together with the Secret's (production needs some of them).
    secrets = load_all(K8S / "secret.yaml")[0]["stringData"]
    Settings(**{k.lower(): v for k, v in {**config, **secrets}.items()}, _env_file=None)
    pod = load_all(K8S / "deployment.yaml")[0]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    grace = int(config["SHUTDOWN_GRACE_SECONDS"])
    assert pod["terminationGracePeriodSeconds"] > pre_stop + grace
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["resources"]["requests"] and container["resources"]["limits"]


def test_nginx_config_streams_without_buffering(tmp_path: Path) -> None:
    # The snippet belongs inside http {}: parse it the way nginx would include it.
    main = tmp_path / "nginx.conf"
    include = ROOT / "deploy" / "nginx.conf"
    main.write_text("\n".join(["events {}", "http {", f"    include {include};", "}", ""]))
    result = run(tool("crossplane"), "parse", "--no-catch", str(main))
    assert result.returncode == 0, result.stderr
    parsed = json.loads(result.stdout)
    assert parsed["status"] == "ok", parsed["errors"]
    snippet = [c for c in parsed["config"] if c["file"].endswith("deploy/nginx.conf")]

    def directives(block: list[dict[str, Any]]) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for item in block:
            found.setdefault(item["directive"], []).extend(item.get("args", []))
            for name, args in directives(item.get("block", [])).items():
                found.setdefault(name, []).extend(args)
        return found

    seen = directives(snippet[0]["parsed"])
    assert seen["proxy_buffering"] == ["off"]
    assert seen["proxy_http_version"] == ["1.1"]
    assert "$http_upgrade" in seen["proxy_set_header"]
    assert (
        int(seen["proxy_read_timeout"][0].rstrip("s"))
        > Settings(_env_file=None).sse_keepalive_seconds
    )
    assert "client_header_timeout" in seen


@pytest.mark.parametrize(
    "path", ["compose.yaml", *[f"deploy/k8s/{p.name}" for p in sorted(K8S.glob("*.yaml"))]]
)
def test_yaml_files_parse(path: str) -> None:
    assert load_all(ROOT / path)

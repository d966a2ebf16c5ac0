"""The rendered compose file run for real by a Compose implementation: `podman-compose` (PyPI, pinned) on the
podman of ../shared/tools/oci-sandbox (`.ci/run` sets it up).

The file is run as rendered except for networking: every container joins the host network, as oci-sandbox
does for build and run (the default bridge would change the host's networking), so the test writes a copy
with `network_mode: host` instead of `ports:`/`networks:`, free ports, and its own container names. No
registry is reachable here: the `etcd` image of the `registry` profile is a local stand-in (Debian's etcd
binary on the local python:3.11-slim stand-in), tagged with the name the compose file uses. On the host
network the `registry` network (internal) is not exercised: its isolation is left to the schema checks.
Without systemd podman runs no health-check timer: the test runs `podman healthcheck run` itself.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
import yaml

from devtools.live import free_port, wait_for_health
from devtools.wheel import add_to_image_context
from tests.edits import edit_file_lines
from tests.etcd_server import ETCD, wait_for

pytestmark = pytest.mark.xdist_group("container")
PODMAN_COMPOSE = shutil.which("podman-compose") or shutil.which(
    "podman-compose", path=str(Path(sys.executable).parent)
)
API_KEY = "kube-play-" + "k" * 32  # the Secret's key (tests only)
SERVICE = "llm-proxy"  # tests/answers/registry.yml


def run(
    *args: str, cwd: Path | None = None, timeout: float = 600, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(args),
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def podman() -> None:
    """Skips, saying why, unless podman, the local base image and podman-compose are all there."""
    if shutil.which("podman") is None or run("podman", "info").returncode != 0:
        pytest.skip("no working podman: run ../shared/tools/oci-sandbox env (see .ci/run)")
    if run("podman", "image", "exists", "python:3.11-slim").returncode != 0:
        pytest.skip(
            "base image python:3.11-slim is not available locally (oci-sandbox base python:3.11-slim)"
        )
    if PODMAN_COMPOSE is None:
        pytest.skip("no podman-compose: pip install the dev extras")


def etcd_stand_in(image: str, workdir: Path) -> None:
    """`image` built locally from Debian's etcd binary, unless it already exists."""
    if run("podman", "image", "exists", image).returncode == 0:
        return
    if ETCD is None:
        pytest.skip("no etcd binary to build the etcd stand-in image from (Debian's etcd-server)")
    context = workdir / "etcd-image"
    context.mkdir()
    shutil.copy2(ETCD, context / "etcd")
    (context / "Containerfile").write_text(
        'FROM python:3.11-slim\nCOPY etcd /usr/local/bin/etcd\nENTRYPOINT []\nCMD ["etcd"]\n'
    )
    build = run("podman", "build", "--network", "host", "-t", image, str(context))
    assert build.returncode == 0, build.stderr[-3000:]


def on_host_network(compose: dict, suffix: str, etcd_port: int) -> dict:
    """The rendered compose file with only its networking changed (see the module docstring)."""
    compose = json.loads(json.dumps(compose))
    compose.pop("networks", None)
    for name, spec in compose["services"].items():
        spec.pop("ports", None)
        spec.pop("networks", None)
        spec["network_mode"] = "host"
        if isinstance(spec.get("build"), dict):
            spec["build"]["network"] = "host"
        spec["container_name"] = f"{spec.get('container_name', name)}-{suffix}"
    peer = free_port()
    etcd = compose["services"]["etcd"]
    etcd["command"] = [
        *[argument for argument in etcd["command"] if "-urls=" not in argument],
        f"--listen-client-urls=http://127.0.0.1:{etcd_port}",
        f"--advertise-client-urls=http://127.0.0.1:{etcd_port}",
        f"--listen-peer-urls=http://127.0.0.1:{peer}",
        f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
        f"--initial-cluster=etcd=http://127.0.0.1:{peer}",
    ]
    compose.pop("volumes", None)
    etcd.pop("volumes", None)  # a named volume would outlive the test
    etcd["tmpfs"] = ["/etcd-data"]  # its root file system is read-only
    compose["services"]["etcd-init"]["environment"]["ETCD_URL"] = f"http://127.0.0.1:{etcd_port}"
    return compose


def instances(etcd_url: str, token: str) -> list[dict]:
    """The values of the service's instance keys, read with `token` (etcd refuses anonymous reads)."""
    prefix = f"/nexus/services/{SERVICE}/"
    body = {"key": b64(prefix), "range_end": b64(prefix[:-1] + "0")}
    answer = httpx.post(f"{etcd_url}/v3/kv/range", json=body, headers={"authorization": token}).json()
    return [json.loads(base64.b64decode(kv["value"])) for kv in answer.get("kvs", [])]


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.mark.usefixtures("podman")
def test_compose_builds_starts_healthy_reads_env_registers_and_stops_with_sigterm(
    rendered, tmp_path: Path
) -> None:
    """Also: the service runs read-only, without capabilities or a way to gain privileges, with its pids
    limit; etcd-init turns etcd's auth on, anonymous writes are refused, and the service registers as
    ETCD_USERNAME."""
    service = tmp_path / SERVICE
    shutil.copytree(rendered("registry"), service)
    add_to_image_context(service)  # no index has this checkout's nexus-ai-platform
    rendered_file = service / f"docker-compose.{SERVICE}.yml"
    compose = yaml.safe_load(rendered_file.read_text())
    suffix = uuid.uuid4().hex[:8]
    port, etcd_port = free_port(), free_port()
    version = f"9.9.{int(suffix, 16) % 1000}"  # a service release: one line of release/service.env
    facts = service / "release" / "service.env"
    edit_file_lines(facts, r"^SERVICE_VERSION=.*$", f"SERVICE_VERSION={version}")
    etcd_stand_in(compose["services"]["etcd"]["image"], tmp_path)
    test_file = service / "docker-compose.test.yml"
    test_file.write_text(yaml.safe_dump(on_host_network(compose, suffix, etcd_port)))
    (service / ".env").write_text(
        f"SERVICE_PORT={port}\nSERVICE_HOST=127.0.0.1\nDRAIN_SECONDS=1\n"
        f"ETCD_URL=http://127.0.0.1:{etcd_port}\nSERVICE_BASE_URL=http://127.0.0.1:{port}\n"
        "ETCD_LEASE_TTL_SECONDS=5\n"
        "ETCD_ROOT_PASSWORD=root-secret-1\nETCD_USERNAME=llm-proxy\nETCD_PASSWORD=service-secret-1\n"
    )
    etcd_url = f"http://127.0.0.1:{etcd_port}"
    container = f"{compose['services'][SERVICE]['container_name']}-{suffix}"
    override = service / f"docker-compose.{SERVICE}.override.yml"  # the service's own additions
    assert PODMAN_COMPOSE is not None, "the engine fixture skips without podman-compose"
    compose_cmd = [
        PODMAN_COMPOSE,
        "-f",
        str(test_file),
        "-f",
        str(override),
        "-p",
        f"nexus-test-{suffix}",
        "--profile",
        "registry",
    ]
    image = f"{compose['services'][SERVICE]['image'].split(':')[0]}:{version}"
    try:
        started = time.monotonic()
        # CI exports the release facts for the image's tag and labels (.github/workflows/ci.yml)
        up = run(*compose_cmd, "up", "-d", "--build", cwd=service, env={"SERVICE_VERSION": version})
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        built = time.monotonic() - started
        health = wait_for_health(f"http://127.0.0.1:{port}/health", timeout=60)
        assert health.status_code == 200
        checked = run("podman", "healthcheck", "run", container)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        metadata = httpx.get(f"http://127.0.0.1:{port}/v1/metadata").json()
        assert metadata["version"] == version, "SERVICE_VERSION from release/service.env"
        assert run("podman", "image", "exists", image).returncode == 0, "the image is tagged with the release"
        confined(container, compose["services"][SERVICE])
        token = authenticated(etcd_url, f"etcd-init-{suffix}")  # on_host_network's container name
        registered = wait_for(lambda: instances(etcd_url, token), timeout=30)
        [instance] = instances(etcd_url, token)
        assert (instance["instance_id"], instance["version"]) == (metadata["instance_id"], version)
        stopped = time.monotonic()
        stop = run(*compose_cmd, "stop", SERVICE, cwd=service, timeout=120)
        assert stop.returncode == 0, stop.stderr[-3000:]
        stop_seconds = time.monotonic() - stopped
        state = json.loads(run("podman", "inspect", container).stdout)[0]["State"]
        assert state["ExitCode"] == 0, "SIGTERM: drained and exited 0"
        assert instances(etcd_url, token) == [], "the registration left with it"
        print(
            f"podman-compose: up (build included) {built:.1f} s, registered {registered:.2f} s after /health answered, "
            f"stopped with exit 0 in {stop_seconds:.1f} s (DRAIN_SECONDS 1)"
        )
    finally:
        run(*compose_cmd, "down", cwd=service, timeout=120)
        run("podman", "rmi", image)


def confined(container: str, spec: dict) -> None:
    """The compose service's confinement (`spec`) as podman applied it, seen from inside the container."""
    [host] = [entry["HostConfig"] for entry in json.loads(run("podman", "inspect", container).stdout)]
    assert host["ReadonlyRootfs"] is True
    assert host["PidsLimit"] == spec["pids_limit"]
    assert "no-new-privileges" in host["SecurityOpt"]
    assert run("podman", "exec", container, "touch", "/srv/probe").returncode != 0, "read-only root"
    [tmpfs] = spec["tmpfs"]
    assert run("podman", "exec", container, "touch", f"{tmpfs.split(':')[0]}/probe").returncode == 0
    status = run("podman", "exec", container, "cat", "/proc/1/status").stdout
    assert "CapEff:\t0000000000000000" in status, "every capability dropped"
    assert "CapBnd:\t0000000000000000" in status
    assert "NoNewPrivs:\t1" in status


def authenticated(etcd_url: str, init: str) -> str:
    """Once etcd-init exited 0: etcd refuses anonymous writes and gives the service's user a token."""
    waited = run("podman", "wait", init, timeout=120)
    assert waited.stdout.strip() == "0", run("podman", "logs", init).stderr
    anonymous = httpx.post(f"{etcd_url}/v3/kv/put", json={"key": b64("x"), "value": b64("x")})
    assert anonymous.status_code == 400, "etcd's auth is on: anonymous writes are refused"
    login = {"name": "llm-proxy", "password": "service-secret-1"}
    return str(httpx.post(f"{etcd_url}/v3/auth/authenticate", json=login).json()["token"])


def kubernetes_resources(service: Path) -> list[dict]:
    """The resources the kustomization lists, in its order (there is no kustomize binary here)."""
    folder = service / "deploy" / "kubernetes"
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
    return [yaml.safe_load((folder / resource).read_text()) for resource in kustomization["resources"]]


def for_podman(resources: list[dict], image: str, suffix: str, port: int) -> list[dict]:
    """The manifests with what this host needs: host network (no container ports; probes by number), a
    free SERVICE_PORT through the ConfigMap, one replica, the image built here, names of its own."""
    resources = json.loads(json.dumps(resources))
    [config] = [r for r in resources if r["kind"] == "ConfigMap"]
    [deployment] = [r for r in resources if r["kind"] == "Deployment"]
    config["metadata"]["name"] += f"-{suffix}"
    config["data"] = {**(config.get("data") or {}), "SERVICE_PORT": str(port)}
    deployment["metadata"]["name"] += f"-{suffix}"
    deployment["spec"]["replicas"] = 1
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    container["image"] = image
    container.pop("ports")
    container["envFrom"][0]["configMapRef"]["name"] = config["metadata"]["name"]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        container[probe]["httpGet"]["port"] = port
    # the key the README's Secret holds (the image listens on 0.0.0.0: keys are required), given as a value:
    # podman's kube play stores a Secret as YAML and then fails to read it back as JSON for secretKeyRef
    [keys] = [entry for entry in container["env"] if entry["name"] == "API_KEYS"]
    assert keys.pop("valueFrom")["secretKeyRef"]["key"] == "API_KEYS"
    keys["value"] = API_KEY
    # a Service needs a cluster; podman 4.3 skips the NetworkPolicy and the PodDisruptionBudget (it enforces
    # neither: the test reaches the pod from the host, no gateway label needed), but they must not break play
    kept = {"ConfigMap", "Deployment", "NetworkPolicy", "PodDisruptionBudget"}
    return [r for r in resources if r["kind"] in kept]


@pytest.mark.usefixtures("podman")
def test_kube_play_runs_the_manifests_under_their_security_context_and_stops_with_sigterm(
    rendered, tmp_path: Path
) -> None:
    if not (shutil.which("catatonit") or Path("/usr/libexec/podman/catatonit").exists()):
        pytest.skip(
            "no catatonit: podman kube play builds the pod's pause image from it (apt install catatonit)"
        )
    service = shutil.copytree(rendered("default"), tmp_path / "service")
    add_to_image_context(service)
    suffix = uuid.uuid4().hex[:8]
    image = f"localhost/nexus-kube-{suffix}:test"
    port = free_port()
    build = run("podman", "build", "--network", "host", "-t", image, str(service))
    assert build.returncode == 0, build.stderr[-3000:]
    resources = kubernetes_resources(service)
    [deployment] = [r for r in resources if r["kind"] == "Deployment"]
    pod_spec = deployment["spec"]["template"]["spec"]
    [container_spec] = pod_spec["containers"]
    manifests = tmp_path / "kube.yaml"
    manifests.write_text(yaml.safe_dump_all(for_podman(resources, image, suffix, port)))
    pod = f"{deployment['metadata']['name']}-{suffix}-pod-0"
    container = f"{pod}-{container_spec['name']}"
    try:
        play = run("podman", "kube", "play", "--network", "host", str(manifests))
        assert play.returncode == 0, play.stdout[-3000:] + play.stderr[-3000:]
        wait_for_health(f"http://127.0.0.1:{port}/health", timeout=60)  # SERVICE_PORT from the ConfigMap
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            path = container_spec[probe]["httpGet"]["path"]
            assert httpx.get(f"http://127.0.0.1:{port}{path}").status_code == 200, probe
        # the image listens on 0.0.0.0: everything but the probes takes the Secret's key
        metadata = f"http://127.0.0.1:{port}/v1/metadata"
        assert httpx.get(metadata).status_code == 401
        assert httpx.get(metadata, headers={"authorization": f"Bearer {API_KEY}"}).status_code == 200
        security = container_spec["securityContext"]
        user = run("podman", "exec", container, "id", "-u").stdout.strip()
        assert user == str(security["runAsUser"]) == str(pod_spec["securityContext"]["runAsUser"])
        assert run("podman", "exec", container, "touch", "/srv/probe").returncode != 0, "read-only root"
        writable = container_spec["volumeMounts"][0]["mountPath"]  # the emptyDir
        assert run("podman", "exec", container, "touch", f"{writable}/probe").returncode == 0
        status = run("podman", "exec", container, "cat", "/proc/1/status").stdout
        assert "CapEff:\t0000000000000000" in status, "every capability dropped"
        assert "CapBnd:\t0000000000000000" in status
        started = time.monotonic()
        # podman 4.3's `kube down` removes the pod with SIGKILL (exit 137): stop it first, as Kubernetes
        # would (SIGTERM, then the drain), and let `kube down` remove what is left
        stop = run("podman", "pod", "stop", pod, timeout=120)
        assert stop.returncode == 0, stop.stderr
        stopped = time.monotonic() - started
        exit_code = run("podman", "inspect", container, "--format", "{{.State.ExitCode}}").stdout.strip()
        assert exit_code == "0", "SIGTERM: drained and exited 0"
        logs = run("podman", "logs", container)
        assert "draining" in logs.stdout + logs.stderr
        print(
            f"podman kube play: healthy as uid {user}, read-only root; SIGTERM to exit 0 in {stopped:.1f} s"
        )
    finally:
        run("podman", "kube", "down", str(manifests), timeout=120)
        run("podman", "rmi", "-f", image)

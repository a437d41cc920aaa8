"""The cluster configs in ``clusters/``: Ray's own validation, the node types they promise, security by
default, and the KubeRay manifest's required RayCluster fields.

Ray validates a cluster YAML in ``ray up`` as ``validate_config(prepare_config(yaml))``: ``prepare_config``
merges the provider's defaults (and builds the on-premise node type), ``validate_config`` applies
``ray/autoscaler/ray-schema.json`` and the cross-field rules. Each test of a rule also runs it on a
deliberately broken copy, so that a check which cannot fail does not pass for nothing.
"""

from __future__ import annotations

import copy
import ipaddress
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import ray
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

REPO = Path(__file__).resolve().parents[2]
CLUSTERS = REPO / "clusters"
CLOUDS = ("aws", "gcp", "azure")
AUTOSCALER_YAMLS = (*CLOUDS, "local")
KUBERAY = CLUSTERS / "kuberay" / "raycluster.yaml"
NETWORK_POLICY = CLUSTERS / "kuberay" / "networkpolicy.yaml"
DOCKERFILE = CLUSTERS / "kuberay" / "Dockerfile"
PRIVATE_PORTS = (8265, 6379, 10001)  # dashboard, GCS, Ray client


def load(name: str) -> dict[str, Any]:
    return yaml.safe_load((CLUSTERS / f"{name}.yaml").read_text())


def ray_validate(config: dict[str, Any]) -> None:
    """What ``ray up`` does to a cluster YAML before it launches anything."""
    validate_config(prepare_config(copy.deepcopy(config)))


def project_version() -> str:
    return re.search(r'^version = "(\S+)"$', (REPO / "pyproject.toml").read_text(), re.M).group(1)


def pinned_torch() -> str:
    """The torch requirement the Makefile installs first (``TORCH ?= torch==X``)."""
    return re.search(r"^TORCH \?= (\S+)$", (REPO / "Makefile").read_text(), re.M).group(1)


# ---------------------------------------------------------------------------------------- validation
@pytest.mark.parametrize("name", AUTOSCALER_YAMLS)
def test_cluster_yaml_passes_rays_validation(name: str) -> None:
    ray_validate(load(name))


def _unknown_key(c: dict[str, Any]) -> None:
    c["max_worker"] = 4  # a typo of max_workers


def _node_type_without_resources(c: dict[str, Any]) -> None:
    del next(iter(c["available_node_types"].values()))["resources"]


def _string_max_workers(c: dict[str, Any]) -> None:
    c["max_workers"] = "ten"


def _head_type_not_a_node_type(c: dict[str, Any]) -> None:
    c["head_node_type"] = "no-such-type"


def _min_workers_above_max(c: dict[str, Any]) -> None:
    c["max_workers"] = 1
    for node_type in c["available_node_types"].values():
        node_type["max_workers"] = node_type["min_workers"] = 2


def _fractional_gpu(c: dict[str, Any]) -> None:
    next(t for t in c["available_node_types"].values() if "GPU" in t["resources"])["resources"]["GPU"] = 0.5


BREAKAGES = [  # (how, what Ray's validation says)
    (_unknown_key, "'max_worker' was unexpected"),
    (_node_type_without_resources, "'resources' is a required property"),
    (_string_max_workers, "'ten' is not of type 'integer'"),
    (_head_type_not_a_node_type, "`head_node_type` must be one of `available_node_types`"),
    (_min_workers_above_max, "smaller than the sum of `min_workers`"),
    (_fractional_gpu, "0.5 is not of type 'integer'"),
]


@pytest.mark.parametrize("name", CLOUDS)
@pytest.mark.parametrize(
    ("breakage", "message"), BREAKAGES, ids=[f.__name__.strip("_") for f, _ in BREAKAGES]
)
def test_broken_copy_fails_rays_validation(name: str, breakage: Any, message: str) -> None:
    config = load(name)
    breakage(config)
    with pytest.raises((jsonschema.ValidationError, ValueError), match=re.escape(message)):
        ray_validate(config)


def test_broken_local_yaml_fails() -> None:
    config = load("local")
    del config["provider"]["head_ip"]
    with pytest.raises(BaseException, match="head_ip"):  # Ray aborts with a click exception
        ray_validate(config)


# ---------------------------------------------------------------------------------------- node types
def node_types(config: dict[str, Any]) -> tuple[dict, list[dict], list[dict]]:
    """(head, CPU worker types, GPU worker types)."""
    types = config["available_node_types"]
    head = types[config["head_node_type"]]
    workers = [t for name, t in types.items() if name != config["head_node_type"]]
    return (
        head,
        [t for t in workers if "GPU" not in t["resources"]],
        [t for t in workers if "GPU" in t["resources"]],
    )


def spot(node_config: dict[str, Any]) -> bool:
    """An AWS spot, GCP preemptible/spot or Azure Spot node."""
    text = yaml.safe_dump(node_config)
    return bool(re.search(r"MarketType: spot|preemptible: true|provisioningModel: SPOT|priority: Spot", text))


@pytest.mark.parametrize("name", CLOUDS)
def test_cloud_yaml_has_cpu_head_cpu_workers_gpu_workers_and_a_spot_option(name: str) -> None:
    config = load(name)
    head, cpu, gpu = node_types(config)
    assert "GPU" not in head["resources"]
    assert cpu and gpu
    for t in cpu + gpu:
        assert 0 <= t["min_workers"] <= t["max_workers"]
    assert all(t["resources"]["GPU"] == 1 for t in gpu)
    assert any(t["max_workers"] > 0 and not spot(t["node_config"]) for t in gpu)  # on-demand GPUs
    assert any(spot(t["node_config"]) for t in cpu + gpu)
    assert config["idle_timeout_minutes"] > 0
    assert config["max_workers"] >= sum(t["max_workers"] for t in cpu + gpu)
    assert not spot({"InstanceType": "m5.large"}) and spot({"InstanceMarketOptions": {"MarketType": "spot"}})


@pytest.mark.parametrize("name", AUTOSCALER_YAMLS)
def test_nodes_install_the_pinned_torch_then_the_mounted_tree(name: str) -> None:
    config = load(name)
    assert config["file_mounts"]["~/raytune_opt"] == "."
    assert "ln -sfn ~/raytune_opt/examples ~/examples" in config["head_setup_commands"]  # for ray submit
    torch = pinned_torch()
    command_lists = [config["setup_commands"]]
    command_lists += [t["worker_setup_commands"] for t in config.get("available_node_types", {}).values()
                      if "worker_setup_commands" in t]  # fmt: skip
    for commands in command_lists:
        text = "\n".join(commands)
        assert f"pip install --quiet {torch} --index-url https://download.pytorch.org/whl/" in text
        assert text.index(torch) < text.index("pip install --quiet -e ~/raytune_opt")
    if name in CLOUDS:
        _, cpu, gpu = node_types(config)
        assert "whl/cpu" in "\n".join(config["setup_commands"])
        for t in gpu:  # a CUDA build and a CUDA image on GPU nodes
            assert re.search(r"whl/cu\d+", "\n".join(t["worker_setup_commands"]))
            assert t["docker"]["worker_image"].endswith("-gpu")


@pytest.mark.parametrize("name", AUTOSCALER_YAMLS)
def test_docker_images_run_the_installed_ray(name: str) -> None:
    config = load(name)
    images = [config["docker"]["image"]]
    images += [
        t["docker"]["worker_image"] for t in config.get("available_node_types", {}).values() if "docker" in t
    ]
    for image in images:
        assert image.startswith(f"rayproject/ray:{ray.__version__}-py311-"), image


# ---------------------------------------------------------------------------------------- security
def _covers(rule_ports: Any, port: int) -> bool:
    """Whether a port spec (an int, "8265", "8000-9000", "*", a list of those) includes ``port``."""
    if isinstance(rule_ports, list):
        return any(_covers(p, port) for p in rule_ports)
    text = str(rule_ports).strip()
    if text in ("*", "-1", "all"):
        return True
    low, _, high = text.partition("-")
    return int(low) <= port <= int(high or low)


def _internet(source: Any) -> bool:
    text = str(source).strip()
    if text in ("*", "Internet", "any", "Any"):
        return True
    try:
        return ipaddress.ip_network(text, strict=False).prefixlen == 0
    except ValueError:
        return False


def open_to_internet(config: Any, ports: tuple[int, ...] = PRIVATE_PORTS) -> list[str]:
    """Every firewall rule in ``config`` that admits one of ``ports`` (the dashboard, GCS and client
    ports by default) from anywhere: AWS ``IpPermissions``, GCP firewall rules
    (``sourceRanges``/``allowed``) and Azure security rules."""
    found: list[str] = []

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "IpPermissions":
                    for rule in value:
                        sources = [r.get("CidrIp") for r in rule.get("IpRanges", [])]
                        sources += [r.get("CidrIpv6") for r in rule.get("Ipv6Ranges", [])]
                        span = f"{rule.get('FromPort', -1)}-{rule.get('ToPort', rule.get('FromPort', -1))}"
                        if str(rule.get("IpProtocol")) == "-1":
                            span = "*"
                        for port in ports:
                            if any(_internet(s) for s in sources) and (span == "*" or _covers(span, port)):
                                found.append(f"{path}.IpPermissions: {port} from {sources}")
                elif key == "sourceRanges" and any(_internet(s) for s in value):
                    for allowed in node.get("allowed", []):
                        for port in ports:
                            if _covers(allowed.get("ports", "*"), port):
                                found.append(f"{path}.sourceRanges: {port}")
                elif key == "securityRules":
                    for rule in value:
                        p = rule.get("properties", rule)
                        if p.get("access") == "Allow" and _internet(p.get("sourceAddressPrefix", "")):
                            for port in ports:
                                if _covers(p.get("destinationPortRange", ""), port):
                                    found.append(f"{path}.securityRules: {port}")
                walk(value, f"{path}.{key}")
        elif isinstance(node, list):
            for i, item in enumerate(node):
                walk(item, f"{path}[{i}]")

    walk(config, "")
    return found


@pytest.mark.parametrize("name", [*AUTOSCALER_YAMLS, "kuberay/raycluster"])
def test_no_rule_opens_the_dashboard_gcs_or_client_port_to_the_internet(name: str) -> None:
    assert open_to_internet(load(name)) == []


def _aws(cidr: str, port: int = 8265) -> dict[str, Any]:
    return {
        "IpPermissions": [
            {"IpProtocol": "tcp", "FromPort": port, "ToPort": port, "IpRanges": [{"CidrIp": cidr}]}
        ]
    }


def _aws_all(cidr6: str) -> dict[str, Any]:
    return {"IpPermissions": [{"IpProtocol": "-1", "Ipv6Ranges": [{"CidrIpv6": cidr6}]}]}


def _gcp(source: str) -> dict[str, Any]:
    return {"sourceRanges": [source], "allowed": [{"IPProtocol": "tcp", "ports": ["6000-7000"]}]}


def _azure(source: str) -> dict[str, Any]:
    rule = {"access": "Allow", "sourceAddressPrefix": source, "destinationPortRange": "10001"}
    return {"securityRules": [{"name": "client", "properties": rule}]}


@pytest.mark.parametrize(
    ("open_rule", "private_rule"),
    [
        (_aws("0.0.0.0/0"), _aws("10.0.0.0/8")),
        (_aws("0.0.0.0/0", port=22), _aws("0.0.0.0/0", port=22)),  # not one of the Ray ports
        (_aws_all("::/0"), _aws_all("fd00::/8")),
        (_gcp("0.0.0.0/0"), _gcp("10.128.0.0/9")),
        (_azure("*"), _azure("VirtualNetwork")),
    ],
)
def test_the_rule_check_tells_open_from_private(open_rule: dict, private_rule: dict) -> None:
    assert open_to_internet({"rules": private_rule}) == []
    if open_rule != private_rule:
        assert open_to_internet({"rules": open_rule})


@pytest.mark.parametrize("name", AUTOSCALER_YAMLS)
def test_dashboard_listens_on_loopback_and_token_auth_is_on(name: str) -> None:
    config = load(name)
    head = " ".join(config["head_start_ray_commands"])
    worker = " ".join(config["worker_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head and "0.0.0.0" not in head
    assert "RAY_AUTH_MODE=token ray start --head" in head
    assert "RAY_AUTH_MODE=token ray start --address" in worker
    assert config["file_mounts"]["~/.ray/auth_token"] == "~/.ray/auth_token"  # the user's own token


@pytest.mark.parametrize("name", [*AUTOSCALER_YAMLS, "kuberay/raycluster"])
def test_no_rule_opens_ssh_to_the_internet(name: str) -> None:
    assert open_to_internet(load(name), ports=(22,)) == []
    assert open_to_internet({"rules": _aws("0.0.0.0/0", port=22)}, ports=(22,))


def test_aws_nodes_join_the_users_group_not_one_ray_opens_to_the_world() -> None:
    # a group Ray creates always admits SSH from 0.0.0.0/0; each node type names the user's group
    config = load("aws")
    assert "security_group" not in config["provider"]
    for name, t in config["available_node_types"].items():
        assert t["node_config"]["SecurityGroupIds"] == ["sg-REPLACE-ME"], name
    assert "--cidr YOUR_CIDR" in (CLUSTERS / "aws.yaml").read_text()


def test_azure_nodes_have_no_public_ip() -> None:
    # Ray's Azure network security group admits SSH from anywhere: no public IPs, then
    assert load("azure")["provider"]["use_internal_ips"] is True


@pytest.mark.parametrize("name", AUTOSCALER_YAMLS)
def test_the_token_file_is_made_and_kept_owner_only(name: str) -> None:
    config = load(name)
    command_lists = [config["setup_commands"]]
    command_lists += [t["worker_setup_commands"] for t in config.get("available_node_types", {}).values()
                      if "worker_setup_commands" in t]  # fmt: skip
    for commands in command_lists:  # every node, before anything else runs
        assert commands[0].split("#")[0].strip() == "chmod 600 ~/.ray/auth_token"
    assert "(umask 077; ray get-auth-token --generate)" in (CLUSTERS / f"{name}.yaml").read_text()
    assert "(umask 077; ray get-auth-token --generate)" in (CLUSTERS / "README.md").read_text()


SECRETS = [
    re.compile(r"AKIA[0-9A-Z]{16}"),  # AWS access key id
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    re.compile(r"(?i)(secret|password|passwd|api[_-]?key)\s*[:=]\s*['\"]?[A-Za-z0-9/+]{12,}"),
    re.compile(r"\b[0-9a-f]{32,}\b"),  # a Ray auth token or any long hex secret
    re.compile(r"AccountKey=|SharedAccessSignature|sig=[A-Za-z0-9%]{20,}"),
]


def test_no_credentials_in_the_cluster_files() -> None:
    files = [p for p in CLUSTERS.rglob("*") if p.is_file()]
    assert len(files) >= 6
    for path in files:
        text = path.read_text()
        for pattern in SECRETS:
            assert not pattern.search(text), f"{path.relative_to(REPO)}: {pattern.pattern}"
    assert SECRETS[3].search("a1" * 32) and SECRETS[0].search("AKIAABCDEFGHIJKLMNOP")


# ---------------------------------------------------------------------------------------- KubeRay
def raycluster_problems(doc: dict[str, Any]) -> list[str]:
    """What a RayCluster (ray.io/v1) for raytune_opt must have and does not."""
    problems = []
    if doc.get("apiVersion") != "ray.io/v1" or doc.get("kind") != "RayCluster":
        problems.append("apiVersion ray.io/v1, kind RayCluster")
    if not doc.get("metadata", {}).get("name"):
        problems.append("metadata.name")
    spec = doc.get("spec", {})
    if spec.get("rayVersion") != ray.__version__:
        problems.append(f"spec.rayVersion = {ray.__version__}")
    if spec.get("authOptions", {}).get("mode") != "token":
        problems.append("spec.authOptions.mode = token")
    head = spec.get("headGroupSpec")
    groups = spec.get("workerGroupSpecs") or []
    if not head:
        problems.append("spec.headGroupSpec")
        head = {}
    if head.get("serviceType", "ClusterIP") != "ClusterIP":
        problems.append("headGroupSpec.serviceType ClusterIP (no LoadBalancer/NodePort)")
    if not groups:
        problems.append("spec.workerGroupSpecs")
    gpu_groups = 0
    for i, group in enumerate([head, *groups]):
        where = "headGroupSpec" if i == 0 else f"workerGroupSpecs[{i - 1}]"
        if "rayStartParams" not in group:
            problems.append(f"{where}.rayStartParams")
        containers = group.get("template", {}).get("spec", {}).get("containers") or []
        if not containers:
            problems.append(f"{where}.template.spec.containers")
            continue
        c = containers[0]
        if f"/raytune-opt:{project_version()}-ray{spec.get('rayVersion')}-" not in str(c.get("image", "")):
            problems.append(
                f"{where}: the image of raytune-opt {project_version()} on Ray {spec.get('rayVersion')}"
            )
        args = " ".join(c.get("args", []))
        if "$KUBERAY_GEN_RAY_START_CMD" not in args:
            problems.append(f"{where}: args end with $KUBERAY_GEN_RAY_START_CMD")
        if "pip install" in args or "git+" in yaml.safe_dump(group):
            problems.append(f"{where}: installs nothing at pod start (the image has it)")
        limits = c.get("resources", {}).get("limits", {})
        if not limits.get("cpu") or not limits.get("memory"):
            problems.append(f"{where}: cpu and memory limits")
        if i > 0:
            if not group.get("groupName"):
                problems.append(f"{where}.groupName")
            lo, n, hi = (group.get(k) for k in ("minReplicas", "replicas", "maxReplicas"))
            if not (isinstance(lo, int) and isinstance(hi, int) and lo <= (n if n is not None else lo) <= hi):
                problems.append(f"{where}: minReplicas <= replicas <= maxReplicas")
            if int(limits.get("nvidia.com/gpu", 0)) >= 1:
                gpu_groups += 1
                if not c["image"].endswith("-gpu"):
                    problems.append(f"{where}: a CUDA image for the GPU group")
    if gpu_groups == 0:
        problems.append("a worker group with nvidia.com/gpu limits")
    annotations = doc.get("metadata", {}).get("annotations", {})
    if annotations.get("ray.io/overwrite-container-cmd") != "true":
        problems.append("metadata.annotations ray.io/overwrite-container-cmd: 'true'")
    return problems


def test_kuberay_manifest_has_the_raycluster_fields() -> None:
    assert raycluster_problems(yaml.safe_load(KUBERAY.read_text())) == []


def _drop(path: str) -> Any:
    def apply(doc: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = doc
        for key in parents:
            node = node[int(key)] if key.isdigit() else node[key]
        del node[int(last) if last.isdigit() else last]

    return apply


@pytest.mark.parametrize(
    "breakage",
    [
        _drop("spec.headGroupSpec"),
        _drop("spec.workerGroupSpecs"),
        _drop("spec.rayVersion"),
        _drop("spec.authOptions"),
        _drop("spec.workerGroupSpecs.1"),  # the GPU group
        _drop("spec.workerGroupSpecs.0.maxReplicas"),
        lambda d: d.update(apiVersion="ray.io/v1alpha1"),
        lambda d: d["spec"]["headGroupSpec"].update(serviceType="LoadBalancer"),
        lambda d: d["spec"]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0].update(
            args=["pip install git+https://github.com/x/raytune_opt@main && $KUBERAY_GEN_RAY_START_CMD"]
        ),
        lambda d: d["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0].update(
            image="rayproject/ray:2.60.0-py311-cpu"
        ),
    ],
)
def test_broken_kuberay_manifest_is_caught(breakage: Any) -> None:
    doc = yaml.safe_load(KUBERAY.read_text())
    breakage(doc)
    assert raycluster_problems(doc)


def test_kuberay_image_is_built_with_the_pinned_torch_and_a_released_raytune_opt() -> None:
    text = DOCKERFILE.read_text()
    assert "FROM ${RAY_IMAGE}" in text and f"RAY_IMAGE=rayproject/ray:{ray.__version__}-py311-cpu" in text
    assert f"pip install --no-cache-dir {pinned_torch()}" in text
    assert f"raytune_opt-{project_version()}-py3-none-any.whl" in text and "git+" not in text
    manifest = KUBERAY.read_text()
    assert "git+" not in manifest and "@main" not in manifest


def network_policy_problems(doc: dict[str, Any], cluster: str) -> list[str]:
    """What the NetworkPolicy must do: select the cluster's pods, admit ingress from them only."""
    problems = []
    if doc.get("apiVersion") != "networking.k8s.io/v1" or doc.get("kind") != "NetworkPolicy":
        problems.append("apiVersion networking.k8s.io/v1, kind NetworkPolicy")
    spec = doc.get("spec", {})
    own = {"ray.io/cluster": cluster}
    if spec.get("podSelector", {}).get("matchLabels") != own:
        problems.append(f"podSelector ray.io/cluster={cluster}")
    if "Ingress" not in spec.get("policyTypes", []):
        problems.append("policyTypes Ingress")
    for rule in spec.get("ingress", []):
        sources = rule.get("from")
        if not sources or any(
            s.get("podSelector", {}).get("matchLabels") != own or len(s) != 1 for s in sources
        ):
            problems.append(f"ingress only from the cluster's own pods: {rule}")
    return problems


def test_kuberay_network_policy_admits_the_clusters_own_pods_only() -> None:
    cluster = yaml.safe_load(KUBERAY.read_text())["metadata"]["name"]
    doc = yaml.safe_load(NETWORK_POLICY.read_text())
    assert network_policy_problems(doc, cluster) == []
    for broken in (
        {**doc, "spec": {**doc["spec"], "ingress": [{}]}},  # from anywhere
        {**doc, "spec": {**doc["spec"], "ingress": [{"from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}]}},
        {**doc, "spec": {**doc["spec"], "podSelector": {}}},
    ):
        assert network_policy_problems(broken, cluster)

"""The meshport Helm chart (deploy/helm/meshport), rendered by the real helm and checked.

Each value set below is linted (`helm lint --strict`) and rendered (`helm template`, Kubernetes
1.33, hooks included); every rendered object must pass scripts/validate-manifests.py
(kubernetes-validate, strict, Kubernetes 1.33: the validator of the bootstrap tests), and the
objects must have the properties the chart promises: probes, a non-root read-only container,
Linkerd injection, the Vault-audience token meshport logs in with, the migration hook, and
settings meshport really has. The settings meshport's own bootstrap writes for its chart
(server/tests/golden/bootstrap/charts/meshport/) must agree with this chart's.

Run with scripts/test.sh, or alone: `~/.cache/meshport/venv/bin/pytest deploy/helm/tests`.
helm comes from scripts/setup.sh (MESHPORT_HELM, or `helm` on PATH).
"""

import base64
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tomllib

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[3]
CHART = ROOT / "deploy" / "helm" / "meshport"
GOLDEN = ROOT / "server" / "tests" / "golden" / "bootstrap" / "charts" / "meshport" / "templates"
VALIDATE = ROOT / "scripts" / "validate-manifests.py"
KUBERNETES = "1.33"
RELEASE, NAMESPACE = "meshport", "meshport"
POSTGRES_URL = "postgres://meshport:pg-secret@db.internal:5432/meshport?sslmode=require"

# The value sets every check runs on.
VALUE_SETS = {
    "defaults": {},
    "ingress": {
        "ingress": {"enabled": True, "className": "nginx", "host": "meshport.shop.example.com"},
    },
    "postgres-3-replicas": {
        "replicaCount": 3,
        "credentials": {
            "existingSecret": "",
            "databaseUrl": POSTGRES_URL,
            "oidcClientSecret": "oidc-secret",
            "auditSigningKey": base64.b64encode(b"k" * 32).decode(),
            "gitopsToken": "ghp_token",
            "gitopsWebhookSecret": "whsec",
        },
        "config": {
            "gitops": {
                "provider": "github",
                "repo_url": "https://github.com/example-org/platform-gitops.git",
                "owner": "example-org",
                "repo": "platform-gitops",
            },
            "jobs": {"lease_seconds": 30, "drift_minutes": 0},
            "identity": {"issuer_url": "https://login.example.com", "session_idle_minutes": 20},
        },
    },
    "existing-secret": {"credentials": {"existingSecret": "meshport-prod-credentials"}},
    "sqlite-one-replica": {
        "replicaCount": 1,
        "database": {"engine": "sqlite"},
        "credentials": {"existingSecret": ""},
        "persistence": {"existingClaim": "meshport-data"},
        "linkerd": {"inject": ""},
        "vaultLogin": {"enabled": False},
        "vaultCA": {"configMap": ""},
        "clusterStatus": {"enabled": False},
        "config": {"vault": {"annotation_prefix": "openbao.openbao.org"}},
    },
    "status-namespaces": {
        "clusterStatus": {
            "name": "eks-prod",
            "namespaces": ["prod-app", "payments"],
            "linkerd": {"enabled": False},
        },
    },
}


def helm_binary():
    helm = os.environ.get("MESHPORT_HELM")
    if helm and os.access(helm, os.X_OK):
        return helm
    helm = shutil.which("helm")
    if helm is None:
        pytest.fail("helm not found: scripts/setup.sh installs it (MESHPORT_HELM)")
    return helm


def helm(*args, values=None, tmp_path=None):
    command = [helm_binary(), *args]
    if values is not None:
        path = tmp_path / "values.yaml"
        path.write_text(yaml.safe_dump(values))
        command += ["--values", str(path)]
    return subprocess.run(command, capture_output=True, text=True, check=False)


def render(values, tmp_path):
    """The rendered objects, hooks included."""
    result = helm(
        "template", RELEASE, str(CHART), "--namespace", NAMESPACE,
        "--kube-version", f"{KUBERNETES}.0", values=values, tmp_path=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def render_error(values, tmp_path):
    result = helm(
        "template", RELEASE, str(CHART), "--namespace", NAMESPACE,
        "--kube-version", f"{KUBERNETES}.0", values=values, tmp_path=tmp_path,
    )
    assert result.returncode != 0, "the render should have failed:\n" + result.stdout
    return result.stderr


def validate(objects, tmp_path):
    """scripts/validate-manifests.py over the objects, one file each: (passed, report)."""
    folder = tmp_path / "rendered"
    folder.mkdir(exist_ok=True)
    for index, document in enumerate(objects):
        name = f"{index:02}-{document['kind']}-{document['metadata']['name']}.yaml"
        (folder / name).write_text(yaml.safe_dump(document))
    result = subprocess.run(
        [sys.executable, str(VALIDATE), "--kubernetes", KUBERNETES, str(folder)],
        capture_output=True, text=True, check=False,
    )
    return result.returncode == 0, result.stdout + result.stderr


def one(objects, kind, name=None):
    found = [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def hooks(objects):
    return [o for o in objects if "helm.sh/hook" in (o["metadata"].get("annotations") or {})]


def release_objects(objects):
    return [o for o in objects if o not in hooks(objects)]


def container(pod_spec, name):
    [found] = [c for c in pod_spec["containers"] if c["name"] == name]
    return found


def meshport_toml(config_map):
    return tomllib.loads(config_map["data"]["meshport.toml"])


# Where meshport's settings are declared: `Config` and the sections each subsystem owns.
SETTINGS_SOURCES = [
    "config.rs",
    "vault/settings.rs",
    "gitops/settings.rs",
    "cluster/settings.rs",
    "telemetry.rs",
]


def meshport_config_keys():
    """meshport's configuration keys, dotted, read from server/src/config.rs and the settings
    modules of the sections it composes: the fields of `Config`, of each section struct it
    names, and of the `VaultLogin` variants."""
    source = "\n".join(
        (ROOT / "server" / "src" / path).read_text()
        for path in SETTINGS_SOURCES
    )
    structs = {
        name: re.findall(r"^\s+pub (\w+):\s*([\w<>]+)", body, re.M)
        for name, body in re.findall(r"pub struct (\w+) \{(.*?)\n\}", source, re.S)
    }
    login = re.search(r"pub enum VaultLogin \{(.*?)\n\}", source, re.S).group(1)
    login_keys = {"method"} | set(re.findall(r"^\s+(\w+): [\w<>]+,", login, re.M))
    keys = set()
    for field, kind in structs["Config"]:
        keys.add(field)
        for sub, sub_kind in structs.get(kind, []):
            keys.add(f"{field}.{sub}")
            if sub_kind == "VaultLogin":
                keys |= {f"{field}.{sub}.{k}" for k in login_keys}
    assert {"database_url", "vault.addr", "vault.login.jwt_path", "jobs.lease_seconds"} <= keys
    return keys


def dotted(table, prefix=""):
    for key, value in table.items():
        if isinstance(value, dict):
            yield prefix + key
            yield from dotted(value, f"{prefix}{key}.")
        else:
            yield prefix + key


@pytest.fixture(params=sorted(VALUE_SETS), name="case")
def case_fixture(request, tmp_path):
    values = VALUE_SETS[request.param]
    return request.param, values, render(values, tmp_path)


def test_the_chart_lints_clean_with_every_value_set(tmp_path):
    for name, values in VALUE_SETS.items():
        result = helm("lint", "--strict", str(CHART), "--namespace", NAMESPACE,
                      "--kube-version", f"{KUBERNETES}.0", values=values, tmp_path=tmp_path)
        assert result.returncode == 0, f"{name}:\n{result.stdout}{result.stderr}"


def test_every_rendered_object_validates_strictly(case, tmp_path):
    name, _, objects = case
    passed, report = validate(objects, tmp_path)
    assert passed, f"{name}:\n{report}"
    assert f"{len(objects)} of {len(objects)} objects valid" in report, report


def test_the_validator_refuses_an_unknown_field(tmp_path):
    objects = render({}, tmp_path)
    deployment = one(objects, "Deployment")
    container(deployment["spec"]["template"]["spec"], "meshport")["livenessProbe"]["httpGett"] = {}
    passed, report = validate([deployment], tmp_path)
    assert not passed and "httpGett" in report, report


def test_the_deployment_runs_meshport_serve_safely(case):
    name, values, objects = case
    deployment = one(objects, "Deployment")
    spec = deployment["spec"]
    assert spec["replicas"] == values.get("replicaCount", 2)
    pod = spec["template"]["spec"]
    meshport = container(pod, "meshport")
    assert meshport["args"] == ["serve"]
    assert meshport["ports"] == [{"name": "http", "containerPort": 3000, "protocol": "TCP"}]
    assert meshport["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert meshport["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert meshport["resources"]["requests"] and meshport["resources"]["limits"]
    # Non-root, read-only root file system, no capabilities, the runtime's seccomp profile.
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    security = meshport["securityContext"]
    assert security["runAsNonRoot"] is True and security["runAsUser"] != 0
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    # Writable emptyDir for /tmp; the data folder is writable too.
    mounts = {m["mountPath"]: m for m in meshport["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes[mounts["/tmp"]["name"]] == {"name": "tmp", "emptyDir": {}}
    assert not mounts["/tmp"].get("readOnly") and not mounts["/var/lib/meshport"].get("readOnly")
    # meshport.toml from the ConfigMap, credentials from the Secret.
    config_map = one(release_objects(objects), "ConfigMap")
    env = {e["name"]: e.get("value") for e in meshport["env"]}
    assert env["MESHPORT_CONFIG"] == "/etc/meshport/meshport.toml"
    # The image's MESHPORT_LISTEN and MESHPORT_DATA_DIR would win over the file: same values.
    toml = meshport_toml(config_map)
    assert (env["MESHPORT_LISTEN"], env["MESHPORT_DATA_DIR"]) == (toml["listen"], toml["data_dir"])
    assert toml["listen"] == "0.0.0.0:3000" and toml["data_dir"] == "/var/lib/meshport"
    assert volumes[mounts["/etc/meshport"]["name"]]["configMap"]["name"] == config_map["metadata"]["name"]
    secret_name = values.get("credentials", {}).get("existingSecret", "meshport-credentials") or "meshport"
    assert meshport["envFrom"] == [{"secretRef": {"name": secret_name, "optional": False}}]
    # meshport drains for 30 s after SIGTERM.
    assert pod["terminationGracePeriodSeconds"] > 30
    # Several replicas are spread over nodes and a drain takes at most one down.
    pdb = one(objects, "PodDisruptionBudget")
    assert pdb["spec"] == {"maxUnavailable": 1, "selector": spec["selector"]}
    service = one(objects, "Service")
    assert service["spec"]["selector"] == spec["selector"]["matchLabels"]
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    labels = spec["template"]["metadata"]["labels"]
    assert spec["selector"]["matchLabels"].items() <= labels.items()
    assert deployment["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
    assert deployment["metadata"]["labels"]["helm.sh/chart"] == "meshport-0.1.0"


def test_pods_are_meshed_by_linkerd_unless_turned_off(case):
    _, values, objects = case
    annotations = one(objects, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    # And scraped by Prometheus at the port and path meshport serves its metrics on.
    assert (annotations["prometheus.io/scrape"], annotations["prometheus.io/port"], annotations["prometheus.io/path"]) == ("true", "3000", "/metrics")
    inject = values.get("linkerd", {}).get("inject", "enabled")
    if inject:
        assert annotations["linkerd.io/inject"] == inject
    else:
        assert "linkerd.io/inject" not in annotations


def test_meshport_logs_in_to_vault_with_a_vault_audience_token(case):
    _, values, objects = case
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    account = one(objects, "ServiceAccount")
    assert pod["serviceAccountName"] == account["metadata"]["name"] == "meshport"
    # The ServiceAccount mounts no API token by itself; the pod mounts one only to read
    # certificate status.
    assert account["automountServiceAccountToken"] is False
    status = values.get("clusterStatus", {}).get("enabled", True)
    assert pod["automountServiceAccountToken"] is status
    config = meshport_toml(one(release_objects(objects), "ConfigMap"))
    projected = [v for v in pod["volumes"] if "projected" in v]
    if values.get("vaultLogin", {}).get("enabled", True) is False:
        assert projected == [] and "login" not in config["vault"]
        return
    [volume] = projected
    assert volume["projected"]["sources"] == [
        {"serviceAccountToken": {"audience": "vault", "expirationSeconds": 3600, "path": "token"}}
    ]
    [mount] = [m for m in container(pod, "meshport")["volumeMounts"] if m["name"] == volume["name"]]
    assert mount == {"name": volume["name"], "mountPath": "/var/run/secrets/vault", "readOnly": True}
    assert config["vault"]["login"] == {
        "method": "kubernetes", "mount": "kubernetes", "role": "meshport",
        "jwt_path": "/var/run/secrets/vault/token",
    }
    assert config["vault"]["ca_cert"] == "/etc/meshport/vault-ca/ca.crt"


def test_the_chart_agrees_with_the_chart_meshport_bootstrap_writes(tmp_path):
    """Same token path, audience, login, Vault CA, data folder and naming as
    server/src/bootstrap/meshport.rs, so the Vault role it writes fits either chart."""
    objects = render({}, tmp_path)
    golden_deployment = yaml.safe_load((GOLDEN / "deployment.yaml").read_text())
    golden_config = tomllib.loads(yaml.safe_load((GOLDEN / "configmap.yaml").read_text())["data"]["meshport.toml"])
    config = meshport_toml(one(release_objects(objects), "ConfigMap"))
    golden_vault = {k: v for k, v in golden_config["vault"].items() if k != "login"}
    assert golden_vault.items() <= config["vault"].items()
    assert golden_config["vault"]["login"].items() <= config["vault"]["login"].items()
    for key in ("listen", "data_dir"):
        assert config[key] == golden_config[key]
    assert config["onboarding"] == golden_config["onboarding"]

    golden_pod = golden_deployment["spec"]["template"]["spec"]
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    by_name = lambda items: {i["name"]: i for i in items}  # noqa: E731
    assert by_name(pod["volumes"])["vault-token"] == by_name(golden_pod["volumes"])["vault-token"]
    assert by_name(pod["volumes"])["vault-ca"] == by_name(golden_pod["volumes"])["vault-ca"]
    golden_mounts = {m["mountPath"] for m in golden_pod["containers"][0]["volumeMounts"]}
    assert golden_mounts == {m["mountPath"] for m in container(pod, "meshport")["volumeMounts"]}
    assert pod["serviceAccountName"] == golden_pod["serviceAccountName"]
    golden_container = golden_pod["containers"][0]
    assert container(pod, "meshport")["envFrom"] == golden_container["envFrom"]
    assert all(e in container(pod, "meshport")["env"] for e in golden_container["env"])


def test_the_configuration_uses_only_keys_meshport_has(case):
    name, _, objects = case
    known = meshport_config_keys()
    for config_map in [o for o in objects if o["kind"] == "ConfigMap"]:
        config = meshport_toml(config_map)
        unknown = sorted(set(dotted(config)) - known)
        assert not unknown, f"{name}: meshport has no setting {unknown}"


def test_whole_numbers_stay_integers_in_meshport_toml(tmp_path):
    config = meshport_toml(one(release_objects(render(VALUE_SETS["postgres-3-replicas"], tmp_path)), "ConfigMap"))
    assert config["jobs"] == {"lease_seconds": 30, "drift_minutes": 0}
    assert type(config["identity"]["session_idle_minutes"]) is int
    error = render_error({"config": {"jobs": {"poll_millis": 1.5}}}, tmp_path)
    assert "config.jobs.poll_millis must be a whole number" in error


def test_the_migration_runs_as_a_hook_before_install_and_upgrade(case):
    name, values, objects = case
    jobs = [o for o in objects if o["kind"] == "Job"]
    if values.get("database", {}).get("engine") == "sqlite":
        assert jobs == [] and hooks(objects) == [], "SQLite: meshport serve migrates its own file"
        return
    job = one(objects, "Job")
    weight = lambda o: int(o["metadata"]["annotations"].get("helm.sh/hook-weight", "0"))  # noqa: E731
    for hook in hooks(objects):
        annotations = hook["metadata"]["annotations"]
        assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
        assert annotations["helm.sh/hook-delete-policy"] == "before-hook-creation,hook-succeeded"
        if hook is not job:
            assert weight(hook) < weight(job), f"{hook['kind']} must exist before the Job"
    pod = job["spec"]["template"]
    migrate = container(pod["spec"], "migrate")
    assert migrate["args"] == ["migrate"]
    assert pod["spec"]["restartPolicy"] == "Never"
    assert migrate["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["metadata"]["annotations"]["linkerd.io/inject"] == "enabled"
    assert pod["metadata"]["annotations"]["config.beta.linkerd.io/proxy-enable-native-sidecar"] == "true"
    # The Job's configuration and credentials exist when it runs (hooks, before the release).
    hook_names = {(o["kind"], o["metadata"]["name"]) for o in hooks(objects)}
    [config_volume] = [v for v in pod["spec"]["volumes"] if v["name"] == "config"]
    assert ("ConfigMap", config_volume["configMap"]["name"]) in hook_names
    secret = migrate["envFrom"][0]["secretRef"]["name"]
    existing = values.get("credentials", {}).get("existingSecret", "meshport-credentials")
    assert secret == existing if existing else ("Secret", secret) in hook_names
    # Same settings as the pods; its pods are not selected by the Deployment, Service or PDB.
    assert meshport_toml(one(objects, "ConfigMap", config_volume["configMap"]["name"])) == meshport_toml(
        one(release_objects(objects), "ConfigMap"))
    selector = one(objects, "Deployment")["spec"]["selector"]["matchLabels"]
    assert not selector.items() <= pod["metadata"]["labels"].items()


def test_the_migrate_and_serve_subcommands_exist():
    main = (ROOT / "server" / "src" / "main.rs").read_text()
    assert re.search(r"enum Command \{.*?\bServe,.*?\bMigrate,", main, re.S)


def test_the_ingress_is_tls_by_cert_manager(tmp_path):
    objects = render(VALUE_SETS["ingress"], tmp_path)
    ingress = one(objects, "Ingress")
    assert ingress["metadata"]["annotations"]["cert-manager.io/cluster-issuer"] == "letsencrypt-prod"
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["spec"]["tls"] == [{"hosts": ["meshport.shop.example.com"], "secretName": "meshport-tls"}]
    [rule] = ingress["spec"]["rules"]
    assert rule["host"] == "meshport.shop.example.com"
    assert rule["http"]["paths"][0]["backend"]["service"] == {"name": "meshport", "port": {"name": "http"}}
    config = meshport_toml(one(release_objects(objects), "ConfigMap"))
    assert config["public_url"] == "https://meshport.shop.example.com"
    assert not [o for o in render({}, tmp_path) if o["kind"] == "Ingress"], "off by default"


def test_the_chart_makes_the_secret_from_values_or_uses_an_existing_one(tmp_path):
    objects = render(VALUE_SETS["postgres-3-replicas"], tmp_path)
    secret = one(release_objects(objects), "Secret")
    data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert data == {
        "MESHPORT_DATABASE_URL": POSTGRES_URL,
        "MESHPORT_IDENTITY__CLIENT_SECRET": "oidc-secret",
        "MESHPORT_AUDIT__SIGNING_KEY": base64.b64encode(b"k" * 32).decode(),
        "MESHPORT_GITOPS__TOKEN": "ghp_token",
        "MESHPORT_GITOPS__WEBHOOK_SECRET": "whsec",
    }
    # The secrets are nowhere else, and a changed Secret rolls the pods.
    configs = "".join(o["data"]["meshport.toml"] for o in objects if o["kind"] == "ConfigMap")
    assert "pg-secret" not in configs and "ghp_token" not in configs
    annotations = one(objects, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert "checksum/secret" in annotations and "checksum/config" in annotations

    objects = render(VALUE_SETS["existing-secret"], tmp_path)
    assert not [o for o in objects if o["kind"] == "Secret"], "an existing Secret is not made"
    meshport = container(one(objects, "Deployment")["spec"]["template"]["spec"], "meshport")
    assert meshport["envFrom"][0]["secretRef"]["name"] == "meshport-prod-credentials"


@pytest.mark.parametrize("replicas", [2, 3])
def test_several_replicas_on_sqlite_fail_the_render(replicas, tmp_path):
    error = render_error({"replicaCount": replicas, "database": {"engine": "sqlite"}}, tmp_path)
    assert f"replicaCount is {replicas} but the database is SQLite: several meshport replicas need PostgreSQL" in error


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"credentials": {"existingSecret": ""}}, "credentials.databaseUrl must be a postgres:// URL"),
        ({"credentials": {"existingSecret": "", "databaseUrl": "sqlite:///var/lib/meshport/m.db"}},
         "credentials.databaseUrl must be a postgres:// URL"),
        ({"replicaCount": 1, "database": {"engine": "sqlite"},
          "credentials": {"existingSecret": "", "databaseUrl": POSTGRES_URL}}, "database.engine is sqlite"),
        ({"database": {"engine": "mysql"}}, "database.engine must be `postgres` or `sqlite`"),
        ({"credentials": {"existingSecret": "", "databaseUrl": POSTGRES_URL, "extra": {"VAULT_TOKEN": "x"}}},
         "meshport reads only MESHPORT_* variables"),
    ],
)
def test_settings_that_cannot_work_fail_the_render_naming_the_value(values, message, tmp_path):
    assert message in render_error(values, tmp_path)


def test_sqlite_runs_one_pod_at_a_time_on_its_volume(tmp_path):
    objects = render(VALUE_SETS["sqlite-one-replica"], tmp_path)
    deployment = one(objects, "Deployment")
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["data"]["persistentVolumeClaim"] == {"claimName": "meshport-data"}
    config = meshport_toml(one(objects, "ConfigMap"))
    assert config["vault"]["annotation_prefix"] == "openbao.openbao.org" and "ca_cert" not in config["vault"]


def test_cluster_status_is_read_with_read_only_roles_in_exactly_the_namespaces_read(case):
    _, values, objects = case
    config = meshport_toml(one(release_objects(objects), "ConfigMap"))
    roles = {(o["metadata"]["namespace"], o["metadata"]["name"]): o for o in objects if o["kind"] == "Role"}
    bindings = {(o["metadata"]["namespace"], o["metadata"]["name"]): o for o in objects if o["kind"] == "RoleBinding"}
    assert not any(o["kind"] in ("ClusterRole", "ClusterRoleBinding") for o in objects)
    status = values.get("clusterStatus", {})
    if status.get("enabled", True) is False:
        assert "clusters" not in config and roles == {} and bindings == {}
        return
    [cluster] = config["clusters"]
    assert cluster["name"] == status.get("name", "local")
    assert "context" not in cluster and "kubeconfig" not in cluster, "in-cluster credentials"
    namespaces = status.get("namespaces") or config["onboarding"]["namespaces"]
    assert cluster.get("namespaces", config["onboarding"]["namespaces"]) == namespaces
    for namespace in namespaces:
        role = roles[(namespace, "meshport-certificates")]
        assert role["rules"] == [{
            "apiGroups": ["cert-manager.io"],
            "resources": ["certificates", "certificaterequests"],
            "verbs": ["get", "list"],
        }]
    linkerd = status.get("linkerd", {}).get("enabled", True)
    assert cluster["linkerd"]["enabled"] is linkerd
    expected = {(n, "meshport-certificates") for n in namespaces}
    if linkerd:
        expected |= {("linkerd", "meshport-linkerd-issuer"), ("cert-manager", "meshport-linkerd-trust-anchor")}
        issuer = roles[("linkerd", "meshport-linkerd-issuer")]["rules"]
        assert {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["linkerd-identity-issuer"], "verbs": ["get"]} in issuer
        assert {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["linkerd-identity-trust-roots"], "verbs": ["get"]} in issuer
        anchor = roles[("cert-manager", "meshport-linkerd-trust-anchor")]["rules"]
        assert {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["linkerd-trust-anchor"], "verbs": ["get"]} in anchor
        # Every rule names its objects: no secret or ConfigMap beyond these two.
        assert all(rule.get("resourceNames") for rule in issuer + anchor)
    assert set(roles) == expected and set(bindings) == expected
    for binding in bindings.values():
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "meshport", "namespace": NAMESPACE}]
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": binding["metadata"]["name"]}

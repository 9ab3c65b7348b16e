"""Renders and checks helm/crm-service; called by scripts/check-chart.sh (not on its own).

    python scripts/check_chart.py CHART_DIR OUT_DIR

1. helm lint --strict (helm-python-sdk: the real Helm v4 engine, no helm binary, no cluster);
2. renders the chart with its defaults and with value variants (each with the image.repository an
   install must give), one OUT_DIR/<variant>.yaml each (NOTES.txt dropped, documents joined with
   ---), for kubernetes-validate to check afterwards;
3. checks that bad values are rejected, each with a message naming its reason (values.schema.json
   and the chart's own checks);
4. asserts what the chart promises (gRPC probes, security context, hooks, secrets, TLS ports ...).

Prints "variants=N documents=M" as its last line.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import helm_python as helm
import yaml

RELEASE, NAMESPACE = "crm", "crm"
FAILURES: list[str] = []

# image.repository has no default (no published image exists): every render names one, as an
# install must. The rejected value sets below say when they leave it out.
IMAGE = "registry.example.com/team/crm-service"
BASE: dict = {"image": {"repository": IMAGE}}

# Value variants rendered besides the defaults. Each is validated by kubernetes-validate.
VARIANTS: dict[str, dict] = {
    "default": {},
    "tls-mtls": {"tls": {"enabled": True, "clientCaSecret": "crm-client-ca"}},
    "tls-only": {"tls": {"enabled": True, "existingSecret": "crm-cert"}},
    "autoscaling": {
        "autoscaling": {"enabled": True, "minReplicas": 3, "maxReplicas": 12},
        "podDisruptionBudget": {"minAvailable": None, "maxUnavailable": "25%"},
    },
    "metrics": {"metrics": {"enabled": True}},
    "chart-secrets": {
        "database": {"url": "postgres://crm:pw@db.example:5432/crm"},
        "jwt": {"mode": "sharedSecret", "sharedSecret": "0123456789abcdef0123456789abcdef"},
    },
    "existing-secrets": {
        "database": {"existingSecret": "crm-db", "existingSecretKey": "url", "schema": "crm"},
        "jwt": {"existingSecret": "idp-key", "existingSecretKey": "key.pem",
                "issuer": "https://idp.example", "audience": "crm"},
        "serviceAccount": {"create": False, "name": "crm-workload"},
    },
    "otel": {"otel": {"endpoint": "http://otel-collector.observability:4317",
                      "resourceAttributes": "deployment.environment=prod"}},
    "everything": {
        "image": {"digest": "sha256:" + "a" * 64},
        "tls": {"enabled": True},
        "metrics": {"enabled": True, "port": 9100},
        "otel": {"endpoint": "http://otel:4317", "serviceName": "crm"},
        "autoscaling": {"enabled": True},
        "probes": {"startup": {"enabled": False}},
        "migration": {"enabled": False},
        "tests": {"enabled": False},
        "config": {"purgeInterval": "0"},
        "server": {"maxConnectionAge": "0"},
        "shutdown": {"delaySeconds": 10, "graceSeconds": 40},
        "terminationGracePeriodSeconds": 60,
        "extraEnv": [{"name": "CRM_EXTRA", "value": "1"}],
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "crm", "effect": "NoSchedule"}],
        "topologySpreadConstraints": [{
            "maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": {"app.kubernetes.io/instance": "{{ .Release.Name }}"}},
        }],
        "podAnnotations": {"example.com/team": "crm"},
        "service": {"annotations": {"example.com/lb": "internal"}},
        "events": {"natsUrl": "nats://nats.nats.svc:4222", "natsStream": "CRM_EVENTS"},
    },
}

# Values that must NOT render: (why, values on top of BASE, or None for the chart's defaults alone,
# and a fragment of the message that says the rejection is for that reason and reads as one).
REJECTED: list[tuple[str, dict | None, str]] = [
    ("no image.repository (the chart's defaults alone, as a first `helm install` has them)", None,
     "at '/image/repository': value must be 'the image you built from the Dockerfile and pushed"),
    ("replicaCount is not an integer", {"replicaCount": "two"}, "at '/replicaCount'"),
    ("unknown top-level key (typo)", {"replicaCunt": 3}, "'replicaCunt' not allowed"),
    ("unknown key inside a group", {"database": {"urll": "postgres://x"}}, "'urll' not allowed"),
    ("duration in weeks", {"config": {"retention": "1w"}}, "at '/config/retention'"),
    ("log format outside the enum", {"config": {"logFormat": "xml"}}, "at '/config/logFormat'"),
    ("grace period not above delay + grace", {"terminationGracePeriodSeconds": 25},
     "terminationGracePeriodSeconds (25) must exceed"),
    ("database.url and database.existingSecret together",
     {"database": {"url": "postgres://x", "existingSecret": "crm-db"}}, "not both"),
    ("short HS256 secret", {"jwt": {"mode": "sharedSecret", "sharedSecret": "short"}}, "at least 32 bytes"),
    ("both PDB bounds", {"podDisruptionBudget": {"maxUnavailable": 1}}, "exactly one of minAvailable"),
    ("batch chunk of 0 customers", {"batches": {"chunkSize": 0}}, "at '/batches/chunkSize'"),
    ("a JetStream subject prefix with a dot", {"events": {"natsSubjectPrefix": "crm.events"}},
     "at '/events/natsSubjectPrefix'"),
]


def check(ok: bool, what: str) -> None:
    if not ok:
        FAILURES.append(what)


def merged(base: dict, over: dict) -> dict:
    """`over` on top of `base`, maps merged key by key as Helm merges values."""
    out = dict(base)
    for key, value in over.items():
        out[key] = merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def render(chart: helm.Chart, values: dict | None) -> dict[str, str]:
    """Renders as an install with `values` on top of BASE; None: the chart's defaults alone."""
    return chart.render(None if values is None else merged(BASE, values), name=RELEASE,
                        namespace=NAMESPACE, is_install=True)


def documents(rendered: dict[str, str]) -> tuple[str, list[dict]]:
    parts = [text.strip() for path, text in sorted(rendered.items())
             if not path.endswith("NOTES.txt") and text.strip()]
    text = "\n---\n".join(parts) + "\n"
    docs = [d for d in yaml.safe_load_all(text) if d]
    return text, docs


def find(docs: list[dict], kind: str, component: str | None = None) -> list[dict]:
    out = [d for d in docs if d.get("kind") == kind]
    if component:
        out = [d for d in out
               if d["metadata"]["labels"].get("app.kubernetes.io/component") == component]
    return out


def one(docs: list[dict], kind: str, variant: str, component: str | None = None) -> dict:
    found = find(docs, kind, component)
    check(len(found) == 1, f"{variant}: expected one {kind}{' ' + component if component else ''}, found {len(found)}")
    return found[0] if found else {}


def env_of(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container.get("env", [])}


def seconds(duration: str) -> float:
    m = re.fullmatch(r"(\d+)(ms|s|m|h|d)?", duration)
    assert m, duration
    scale = {"ms": 0.001, "s": 1, None: 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]
    return int(m.group(1)) * scale


def assert_common(variant: str, docs: list[dict]) -> None:
    """What must hold in every variant."""
    for d in docs:
        labels = d["metadata"].get("labels", {})
        for key in ("app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/version",
                    "app.kubernetes.io/managed-by", "helm.sh/chart", "app.kubernetes.io/component"):
            check(key in labels, f"{variant}: {d['kind']} {d['metadata']['name']} lacks label {key}")
    deploy = one(docs, "Deployment", variant)
    if not deploy:
        return
    pod = deploy["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = env_of(container)
    # Secrets never as literal values.
    for name in ("CRM_DATABASE_URL",):
        check("secretKeyRef" in env.get(name, {}).get("valueFrom", {}),
              f"{variant}: {name} must come from a secretKeyRef")
        check("value" not in env.get(name, {}), f"{variant}: {name} must not be a literal value")
    check("CRM_JWT_SECRET" not in env, f"{variant}: the JWT secret must be a mounted file, not CRM_JWT_SECRET")
    jwt_files = [n for n in ("CRM_JWT_PUBLIC_KEY_FILE", "CRM_JWT_SECRET_FILE") if n in env]
    check(len(jwt_files) == 1, f"{variant}: exactly one JWT key file variable, got {jwt_files}")
    jwt_mount = [m for m in container["volumeMounts"] if m["name"] == "jwt"]
    check(bool(jwt_mount) and jwt_mount[0].get("readOnly") is True, f"{variant}: JWT key must be mounted read-only")
    if jwt_files and jwt_mount:
        check(env[jwt_files[0]]["value"].startswith(jwt_mount[0]["mountPath"].rstrip("/") + "/"),
              f"{variant}: {jwt_files[0]} must point into the JWT mount")
    for e in container.get("env", []):
        check("value" not in e or isinstance(e["value"], str), f"{variant}: env {e['name']} is not a string")
    check(env.get("CRM_LISTEN", {}).get("value") == "0.0.0.0:50051", f"{variant}: CRM_LISTEN")
    for name in ("CRM_MAX_BATCH_ITEMS", "CRM_MAX_OPEN_BATCHES", "CRM_BATCH_CHUNK_SIZE"):
        check(env.get(name, {}).get("value", "").isdigit(), f"{variant}: {name} must be a whole number")
    check(bool(env.get("CRM_BATCH_LEASE", {}).get("value")), f"{variant}: CRM_BATCH_LEASE")
    # Probes: native gRPC, numeric port.
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        if probe not in container:
            check(probe == "startupProbe", f"{variant}: {probe} missing")
            continue
        grpc = container[probe].get("grpc")
        check(isinstance(grpc, dict), f"{variant}: {probe} is not a grpc probe")
        if isinstance(grpc, dict):
            check(isinstance(grpc.get("port"), int), f"{variant}: {probe}.grpc.port must be a number")
    readiness = container.get("readinessProbe", {}).get("grpc", {})
    check(readiness.get("service") == "crm.v1.CustomerService",
          f"{variant}: readiness must probe crm.v1.CustomerService, got {readiness.get('service')!r}")
    check(not container.get("livenessProbe", {}).get("grpc", {}).get("service"),
          f"{variant}: liveness must probe the whole server (service \"\")")
    # Security context.
    psc, sc = pod.get("securityContext", {}), container.get("securityContext", {})
    check(psc.get("runAsNonRoot") is True and sc.get("runAsNonRoot") is True, f"{variant}: runAsNonRoot")
    check(sc.get("runAsUser") == 65532, f"{variant}: runAsUser 65532")
    check(sc.get("readOnlyRootFilesystem") is True, f"{variant}: readOnlyRootFilesystem")
    check(sc.get("allowPrivilegeEscalation") is False, f"{variant}: allowPrivilegeEscalation false")
    check(sc.get("capabilities", {}).get("drop") == ["ALL"], f"{variant}: capabilities drop ALL")
    check(psc.get("seccompProfile", {}).get("type") == "RuntimeDefault", f"{variant}: seccomp RuntimeDefault")
    check(pod.get("automountServiceAccountToken") is False, f"{variant}: no service account token")
    # Shutdown ordering.
    delay = seconds(env.get("CRM_SHUTDOWN_DELAY", {}).get("value", "x"))
    grace = seconds(env.get("CRM_SHUTDOWN_GRACE", {}).get("value", "x"))
    check(pod.get("terminationGracePeriodSeconds", 30) > delay + grace,
          f"{variant}: terminationGracePeriodSeconds must exceed shutdown delay + grace")
    # The Service and the PDB select only server pods (never the migration Job's or the test's).
    selector = deploy["spec"]["selector"]["matchLabels"]
    check(selector.get("app.kubernetes.io/component") == "server", f"{variant}: selector lacks component=server")
    for svc in find(docs, "Service"):
        check(svc["spec"]["selector"] == selector, f"{variant}: Service selector differs from the Deployment's")
        grpc_ports = [p for p in svc["spec"]["ports"] if p["name"] == "grpc"]
        check(bool(grpc_ports) and grpc_ports[0].get("appProtocol") == "grpc", f"{variant}: Service grpc appProtocol")
    for pdb in find(docs, "PodDisruptionBudget"):
        check(pdb["spec"]["selector"]["matchLabels"] == selector, f"{variant}: PDB selector differs")
    for job in find(docs, "Job"):
        labels = job["spec"]["template"]["metadata"]["labels"]
        check(any(labels.get(k) != v for k, v in selector.items()), f"{variant}: the Job's pods match the Service")
        (migrate,) = job["spec"]["template"]["spec"]["containers"]
        check(migrate.get("args") == ["migrate"], f"{variant}: the Job must run `crm-service migrate`")
        jenv = env_of(migrate)
        check("secretKeyRef" in jenv.get("CRM_DATABASE_URL", {}).get("valueFrom", {}),
              f"{variant}: the Job's CRM_DATABASE_URL must come from a secretKeyRef")
        check(jenv["CRM_DATABASE_URL"] == env["CRM_DATABASE_URL"], f"{variant}: the Job uses another database")
        ann = job["metadata"].get("annotations", {})
        check(ann.get("helm.sh/hook") == "pre-install,pre-upgrade", f"{variant}: Job hook annotation")
        check(set(ann.get("helm.sh/hook-delete-policy", "").split(",")) == {"before-hook-creation", "hook-succeeded"},
              f"{variant}: Job hook-delete-policy")
        jsc = migrate.get("securityContext", {})
        check(jsc.get("readOnlyRootFilesystem") is True and jsc.get("runAsNonRoot") is True,
              f"{variant}: the Job's security context")
        check(isinstance(job["spec"].get("backoffLimit"), int), f"{variant}: Job backoffLimit")
        # A chart-created Secret the Job reads must exist before it: a hook of lower weight.
        secret_name = jenv["CRM_DATABASE_URL"]["valueFrom"]["secretKeyRef"]["name"]
        for secret in find(docs, "Secret"):
            if secret["metadata"]["name"] == secret_name:
                sann = secret["metadata"].get("annotations", {})
                check(set(sann.get("helm.sh/hook", "").split(",")) >= {"pre-install", "pre-upgrade"},
                      f"{variant}: chart-created database Secret must be a pre-install,pre-upgrade hook")
                check(int(sann.get("helm.sh/hook-weight", "0")) < int(ann.get("helm.sh/hook-weight", "0")),
                      f"{variant}: database Secret hook weight must be below the Job's")
    tls = "CRM_TLS_CERT_FILE" in env
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        if probe in container:
            want = 8081 if tls else 50051
            check(container[probe]["grpc"]["port"] == want,
                  f"{variant}: {probe} port {container[probe]['grpc']['port']}, want {want}")


def assert_token_notes(variant: str, notes: str, env: dict[str, dict], pod: dict) -> None:
    """With an HS256 secret, NOTES.txt says how to mint a token with it, naming the file the pod
    mounts and the Secret and key it comes from."""
    secret_file = env.get("CRM_JWT_SECRET_FILE", {}).get("value", "")
    check(f"-- /usr/local/bin/crm-service token \\\n    --jwt-secret-file {secret_file} --tenant" in notes,
          f"{variant}: NOTES.txt lacks the `kubectl exec ... crm-service token --jwt-secret-file {secret_file}` line")
    volume = [v for v in pod["volumes"] if v["name"] == "jwt"][0]["secret"]
    key = volume["items"][0]["key"].replace(".", "\\.")
    check(f"get secret {volume['secretName']} -o jsonpath='{{.data.{key}}}' | base64 -d)" in notes
          and "crm-service token --tenant" in notes,
          f"{variant}: NOTES.txt lacks the CRM_JWT_SECRET=\"$(kubectl get secret {volume['secretName']} ...)\" line")


def assert_variant(variant: str, docs: list[dict], notes: str = "") -> None:
    deploy = one(docs, "Deployment", variant)
    if not deploy:
        return
    pod = deploy["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = env_of(container)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    annotations = deploy["spec"]["template"]["metadata"].get("annotations", {})
    if variant == "default":
        check(deploy["spec"].get("replicas") == 2, "default: 2 replicas")
        check(ports == {"grpc": 50051}, f"default: container ports {ports}")
        check(container["image"] == f"{IMAGE}:0.1.0", f"default: image {container['image']}")
        check(len(find(docs, "Job", "migration")) == 1, "default: migration Job")
        check(not find(docs, "HorizontalPodAutoscaler"), "default: no HPA")
        check(not find(docs, "Secret"), "default: the chart creates no Secret")
        check(len(find(docs, "PodDisruptionBudget")) == 1, "default: PDB")
        check("CRM_METRICS_LISTEN" not in env and "OTEL_EXPORTER_OTLP_ENDPOINT" not in env, "default: no metrics/otel")
        check("startupProbe" in container, "default: startup probe")
        check(env["CRM_MAX_CONNECTION_AGE"]["value"] == "5m", "default: max connection age 5m")
        check(env["CRM_LOG_FORMAT"]["value"] == "json", "default: json logs")
        check("CRM_EVENTS_NATS_URL" not in env, "default: no JetStream relay")
        sas = find(docs, "ServiceAccount")
        check(len(sas) == 1 and sas[0].get("automountServiceAccountToken") is False, "default: ServiceAccount")
    if variant.startswith("tls") or variant == "everything":
        check(env.get("CRM_HEALTH_LISTEN", {}).get("value") == "0.0.0.0:8081", f"{variant}: CRM_HEALTH_LISTEN")
        check(ports.get("health") == 8081, f"{variant}: health container port")
        check("CRM_TLS_KEY_FILE" in env and "CRM_TLS_CERT_FILE" in env, f"{variant}: TLS files")
        check(("CRM_TLS_CLIENT_CA_FILE" in env) == (variant == "tls-mtls"), f"{variant}: client CA only with mTLS")
        check(not find(docs, "Pod", "test") or variant != "tls-mtls", f"{variant}: no helm test with mTLS")
    if variant in ("autoscaling", "everything"):
        check("replicas" not in deploy["spec"], f"{variant}: replicas must be omitted with the HPA")
        hpa = one(docs, "HorizontalPodAutoscaler", variant)
        check(hpa.get("apiVersion") == "autoscaling/v2", f"{variant}: HPA apiVersion")
    if variant in ("metrics", "everything"):
        port = 9464 if variant == "metrics" else 9100
        check(ports.get("metrics") == port, f"{variant}: metrics container port")
        check(env.get("CRM_METRICS_LISTEN", {}).get("value") == f"0.0.0.0:{port}", f"{variant}: CRM_METRICS_LISTEN")
        check(annotations.get("prometheus.io/scrape") == "true" and annotations.get("prometheus.io/port") == str(port)
              and annotations.get("prometheus.io/path") == "/metrics", f"{variant}: prometheus annotations")
        svc = one(docs, "Service", variant)
        check(any(p["name"] == "metrics" for p in svc.get("spec", {}).get("ports", [])), f"{variant}: Service metrics port")
    if variant == "chart-secrets":
        assert_token_notes(variant, notes, env, pod)
        names = {s["metadata"]["name"] for s in find(docs, "Secret")}
        check(names == {"crm-crm-service-database", "crm-crm-service-jwt"}, f"chart-secrets: Secrets {names}")
        check("CRM_JWT_SECRET_FILE" in env, "chart-secrets: HS256 secret file")
        check("checksum/database" in annotations and "checksum/jwt" in annotations, "chart-secrets: checksums")
    if variant == "existing-secrets":
        ref = env["CRM_DATABASE_URL"]["valueFrom"]["secretKeyRef"]
        check(ref == {"name": "crm-db", "key": "url"}, f"existing-secrets: database ref {ref}")
        check(not find(docs, "Secret") and not find(docs, "ServiceAccount"), "existing-secrets: nothing created")
        vol = [v for v in pod["volumes"] if v["name"] == "jwt"][0]["secret"]
        check(vol["secretName"] == "idp-key" and vol["items"][0]["key"] == "key.pem", "existing-secrets: JWT volume")
        check(pod["serviceAccountName"] == "crm-workload", "existing-secrets: service account")
        job = one(docs, "Job", variant)
        check(job and job["spec"]["template"]["spec"]["serviceAccountName"] == "crm-workload",
              "existing-secrets: the Job uses the existing service account")
        check(env.get("CRM_JWT_ISSUER", {}).get("value") == "https://idp.example", "existing-secrets: issuer")
    if variant in ("otel", "everything"):
        check("OTEL_EXPORTER_OTLP_ENDPOINT" in env, f"{variant}: OTEL endpoint")
        check("k8s.pod.name=$(POD_NAME)" in env.get("OTEL_RESOURCE_ATTRIBUTES", {}).get("value", ""),
              f"{variant}: OTEL resource attributes")
        names = [e["name"] for e in container["env"]]
        check(names.index("POD_NAME") < names.index("OTEL_RESOURCE_ATTRIBUTES"),
              f"{variant}: POD_NAME must precede its $(POD_NAME) reference")
    if variant == "everything":
        check(container["image"].endswith("@sha256:" + "a" * 64), "everything: digest")
        check(not find(docs, "Job") and not find(docs, "Pod"), "everything: no Job, no test Pod")
        tsc = pod.get("topologySpreadConstraints", [{}])[0]
        check(tsc.get("labelSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/instance") == RELEASE,
              "everything: topologySpreadConstraints are templated")
        check(env.get("CRM_EXTRA", {}).get("value") == "1", "everything: extraEnv")
        check(env.get("CRM_EVENTS_NATS_URL", {}).get("value") == "nats://nats.nats.svc:4222"
              and env.get("CRM_EVENTS_NATS_STREAM", {}).get("value") == "CRM_EVENTS"
              and env.get("CRM_EVENTS_NATS_LEASE", {}).get("value") == "15s", "everything: the JetStream relay")


def main() -> int:
    chart_dir, out_dir = Path(sys.argv[1]), Path(sys.argv[2])
    report = helm.lint(str(chart_dir), BASE, strict=True)
    for m in report.get("messages", []):
        print(f"  lint [{ {1: 'INFO', 2: 'WARNING', 3: 'ERROR'}.get(m['severity'], '?') }] {m['path']}: {m['error']}")
    for e in report.get("errors", []):
        print(f"  lint error: {e}")
    check(not report.get("errors") and all(m["severity"] < 2 for m in report.get("messages", [])),
          "helm lint --strict reported errors or warnings")

    chart = helm.Chart.load(str(chart_dir))
    total = 0
    for variant, values in VARIANTS.items():
        try:
            rendered = render(chart, values)
        except helm.HelmError as e:
            FAILURES.append(f"{variant}: render failed: {e}")
            continue
        notes = rendered.get("crm-service/templates/NOTES.txt", "")
        check(bool(notes.strip()), f"{variant}: NOTES.txt is empty")
        text, docs = documents(rendered)
        (out_dir / f"{variant}.yaml").write_text(text)
        total += len(docs)
        assert_common(variant, docs)
        assert_variant(variant, docs, notes)
        print(f"  rendered {variant}: {len(docs)} documents ({', '.join(sorted(d['kind'] for d in docs))})")
    # An upgrade renders the same hooks.
    try:
        _, docs = documents(chart.render(BASE, name=RELEASE, namespace=NAMESPACE, is_upgrade=True, revision=2))
        assert_common("upgrade", docs)
    except helm.HelmError as e:
        FAILURES.append(f"upgrade: render failed: {e}")

    for why, values, reason in REJECTED:
        try:
            render(chart, values)
            FAILURES.append(f"accepted bad values ({why}): {values}")
        except (helm.HelmValuesError, helm.HelmRenderError) as e:
            first = str(e).strip().splitlines()[-1].strip()
            print(f"  rejected as expected ({why}): {first}")
            check(reason in str(e), f"{why}: rejected, but not for that reason (wanted {reason!r}): {e}")

    for f in FAILURES:
        print(f"FAIL: {f}")
    print(f"variants={len(VARIANTS)} documents={total} rejected={len(REJECTED)}")
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())

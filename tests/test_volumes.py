"""Volumes for apps (`apps[].volumes`): claims on k3s' local-path, one pod that keeps its node, the
data kept on a protected stack, and the disk check."""

import re

import kubernetes_validate
import pytest

from components.capacity import (
    BYTES_PER_GB,
    SYSTEM_DISK_RESERVE_GB,
    storage_bytes,
    volume_room_bytes,
)
from components.catalog import BUNDLES
from components.settings import TESTED_K3S_MINORS
from tests.helpers import (
    DEPLOYMENT,
    PROJECT_DIR,
    declared_objects,
    deploy,
    kubernetes_schema_version,
    rejected,
)

CLAIM = "kubernetes:core/v1:PersistentVolumeClaim"
NAMESPACE = "kubernetes:core/v1:Namespace"

# A database of the kind The Gallery runs: two volumes, hardened, so /tmp is a volume of the pod too.
CATALOG_DB = {
    "name": "catalog-db",
    "image": "docker.io/library/postgres:17.2",
    "port": 5432,
    "path": "/db",
    "securityContext": {"runAsNonRoot": True, "runAsUser": 999, "readOnlyRootFilesystem": True},
    "volumes": [
        {"name": "data", "mountPath": "/var/lib/postgresql/data", "size": "10Gi"},
        {"name": "wal", "mountPath": "/var/lib/postgresql/wal", "size": "2Gi"},
    ],
}
GATEWAY = {"name": "gateway", "image": "ghcr.io/acme/gateway:1.2.0", "port": 8080, "replicas": 2}


def app(**fields):
    return {"name": "web", "image": "ghcr.io/acme/web:1.0.0", "port": 8080, **fields}


def volume(**fields):
    return {"name": "data", "mountPath": "/data", "size": "1Gi", **fields}


@pytest.fixture(scope="module")
def protected():
    return deploy(protect=True, bundleId="medium_3_0", apps=[CATALOG_DB, GATEWAY])


@pytest.fixture(scope="module")
def disposable():
    """The dev stack: protect is false there."""
    return deploy(bundleId="medium_3_0", apps=[CATALOG_DB, GATEWAY])


def deployment_spec(deployment, name):
    (found,) = [d for d in deployment.of_type(DEPLOYMENT) if d.inputs["metadata"]["name"] == name]
    return found


def test_each_volume_is_a_read_write_once_claim_on_k3s_local_path(protected):
    claims = {claim.inputs["metadata"]["name"]: claim for claim in protected.of_type(CLAIM)}
    assert set(claims) == {"catalog-db-data", "catalog-db-wal"}
    data = claims["catalog-db-data"]
    assert data.name == "lightsail-k3s-dev-catalog-db-data-claim"
    assert data.inputs["metadata"]["namespace"] == "apps"
    assert data.inputs["metadata"]["labels"]["app.kubernetes.io/name"] == "catalog-db"
    assert data.inputs["spec"] == {
        "accessModes": ["ReadWriteOnce"],
        # Named: pulumi-kubernetes reads the class to see that a WaitForFirstConsumer claim is ready.
        "storageClassName": "local-path",
        "resources": {"requests": {"storage": "10Gi"}},
    }
    assert claims["catalog-db-wal"].inputs["spec"]["resources"] == {"requests": {"storage": "2Gi"}}
    # local-path ignores the size and k3s' class refuses a resize: a new size stays the check's.
    assert data.ignore_changes == ["spec.resources.requests.storage"]
    provider = protected.one("pulumi:providers:kubernetes")
    assert all(c.provider.startswith(provider.urn + "::") for c in claims.values())


def test_a_volume_app_mounts_its_claims_and_runs_one_pod_that_goes_before_the_next(protected):
    db = deployment_spec(protected, "catalog-db")
    spec = db.inputs["spec"]
    assert spec["replicas"] == 1
    # Recreate: the old pod is gone before the new one starts, so two pods never write the data.
    assert spec["strategy"] == {"type": "Recreate"}
    pod = spec["template"]["spec"]
    assert pod["volumes"] == [
        {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
        {"name": "data", "persistentVolumeClaim": {"claimName": "catalog-db-data"}},
        {"name": "wal", "persistentVolumeClaim": {"claimName": "catalog-db-wal"}},
    ]
    (container,) = pod["containers"]
    assert container["volumeMounts"] == [
        {"name": "tmp", "mountPath": "/tmp"},
        {"name": "data", "mountPath": "/var/lib/postgresql/data"},
        {"name": "wal", "mountPath": "/var/lib/postgresql/wal"},
    ]
    for claim in protected.of_type(CLAIM):
        assert protected.depends_on(db, claim)
    # No affinity of ours: local-path pins each volume to the node it was made on, and the
    # scheduler keeps the pod there.
    assert "affinity" not in pod and "nodeSelector" not in pod


def test_apps_without_volumes_keep_their_rolling_update(protected):
    gateway = deployment_spec(protected, "gateway").inputs["spec"]
    assert gateway["replicas"] == 2
    assert gateway["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}
    assert "volumes" not in gateway["template"]["spec"]


def test_a_change_of_strategy_replaces_the_deployment_the_old_one_deleted_first(protected):
    # The API server refuses RollingUpdate -> Recreate in place (pulumi/pulumi-kubernetes#2843).
    for deployment in protected.of_type(DEPLOYMENT):
        assert deployment.replace_on_changes == ["spec.strategy.type"], deployment.name
        assert deployment.delete_before_replace, deployment.name


def test_a_protected_stack_leaves_the_claims_and_their_namespace_in_the_cluster(protected):
    for claim in protected.of_type(CLAIM):
        assert claim.retain_on_delete and not claim.protect, claim.name
    # Deleting the namespace would delete the claims in it, kept ones included.
    assert protected.named("lightsail-k3s-dev-namespace").retain_on_delete


def test_a_disposable_stack_deletes_its_claims_with_it(disposable):
    assert disposable.of_type(CLAIM)
    for claim in disposable.of_type(CLAIM):
        assert not claim.retain_on_delete, claim.name
    assert not disposable.named("lightsail-k3s-dev-namespace").retain_on_delete


@pytest.mark.parametrize("minor", TESTED_K3S_MINORS)
def test_the_claims_and_their_deployment_match_the_kubernetes_schema(minor, protected):
    schema_version = f"1.{minor}.0"
    assert schema_version in kubernetes_validate.utils.all_versions()
    objects = list(declared_objects(protected))
    assert {"PersistentVolumeClaim", "Deployment"} <= {obj["kind"] for obj in objects}
    for obj in objects:
        kubernetes_validate.validate(obj, schema_version, strict=True)


def test_the_pinned_minor_validates_the_claims_too(protected):
    schema_version = kubernetes_schema_version(protected.outputs["k3sVersion"].value)
    for obj in declared_objects(protected):
        if obj["kind"] == "PersistentVolumeClaim":
            kubernetes_validate.validate(obj, schema_version, strict=True)


def test_the_first_preview_declares_the_claims_and_their_mounts():
    preview = deploy(first_preview=True, protect=True, bundleId="medium_3_0", apps=[CATALOG_DB])
    claims = preview.of_type(CLAIM)
    assert sorted(c.inputs["metadata"]["name"] for c in claims) == [
        "catalog-db-data",
        "catalog-db-wal",
    ]
    assert all(c.retain_on_delete for c in claims)
    db = deployment_spec(preview, "catalog-db").inputs["spec"]
    assert db["strategy"] == {"type": "Recreate"}
    assert [v["name"] for v in db["template"]["spec"]["volumes"]] == ["tmp", "data", "wal"]


def test_the_memory_check_counts_no_surge_pod_for_an_app_that_stops_its_pod_first():
    # small_3_0 leaves the apps 784Mi: one 512Mi pod fits, a rolling update's second one does not.
    large = {"limits": {"memory": "512Mi"}}
    rejected(
        "apps", "memory limits add up to 1024Mi", bundleId="small_3_0", apps=[app(resources=large)]
    )
    deployment = deploy(bundleId="small_3_0", apps=[app(resources=large, volumes=[volume()])])
    assert deployment_spec(deployment, "web").inputs["spec"]["strategy"] == {"type": "Recreate"}


# Bad volumes: each refused before anything is declared, naming the app and the volume's key.


def test_a_volume_app_runs_one_replica():
    rejected(
        "apps",
        "apps[0] (web): replicas 2 with volumes",
        "set replicas: 1",
        apps=[app(replicas=2, volumes=[volume()])],
    )


@pytest.mark.parametrize("replicas", [0, 1])
def test_a_volume_app_may_run_one_replica_or_none(replicas):
    deployment = deploy(apps=[app(replicas=replicas, volumes=[volume()])])
    assert deployment_spec(deployment, "web").inputs["spec"]["replicas"] == replicas


@pytest.mark.parametrize("size", ["10GB", "10 Gi", "-1Gi", "+1Gi", "500m", "1Gib", "ten", "", 10])
def test_volume_sizes_are_kubernetes_quantities(size):
    rejected(
        "apps",
        f"apps[0] (web): volumes[1].size {size!r} is not a Kubernetes quantity",
        "size: 5Gi",
        apps=[app(volumes=[volume(), volume(name="cache", mountPath="/cache", size=size)])],
    )


def test_a_size_without_its_unit_is_refused_as_bytes():
    rejected(
        "apps",
        "apps[0] (web): volumes[0].size '10' is below 1Mi",
        "size: 10Gi",
        apps=[app(volumes=[volume(size="10")])],
    )


@pytest.mark.parametrize(
    ("quantity", "size_bytes"),
    [
        ("10Gi", 10 * 2**30),
        ("1.5Gi", 3 * 2**29),
        ("500M", 500 * 10**6),
        ("1e9", 10**9),
        ("2T", 2 * 10**12),
        ("1Ti", 2**40),
        # Kubernetes rounds a quantity's value up to a whole byte.
        ("0.0001Ki", 1),
    ],
)
def test_sizes_are_counted_as_kubernetes_counts_them(quantity, size_bytes):
    assert storage_bytes(quantity) == size_bytes


@pytest.mark.parametrize(
    ("mount_path", "fragment"),
    [
        ("data", "'data' is not an absolute directory path"),
        ("/", "'/' is not an absolute directory path"),
        ("/data/", "'/data/' is not an absolute directory path"),
        ("/srv/../data", "'/srv/../data' is not an absolute directory path"),
        ("//data", "'//data' is not an absolute directory path"),
        (None, "None is not an absolute directory path"),
    ],
)
def test_mount_paths_are_absolute_and_in_normal_form(mount_path, fragment):
    rejected(
        "apps",
        f"apps[0] (web): volumes[0].mountPath {fragment}",
        apps=[app(volumes=[volume(mountPath=mount_path)])],
    )


def test_two_volumes_of_an_app_cannot_share_a_mount_path():
    rejected(
        "apps",
        "apps[0] (web): volumes[1].mountPath /data is already mounted",
        apps=[app(volumes=[volume(), volume(name="other")])],
    )


def test_a_volume_cannot_take_the_tmp_of_a_read_only_root_filesystem():
    rejected(
        "apps",
        "apps[0] (web): volumes[0].mountPath /tmp is already mounted",
        apps=[
            app(
                securityContext={"readOnlyRootFilesystem": True},
                volumes=[volume(mountPath="/tmp")],
            )
        ],
    )


def test_without_a_read_only_root_filesystem_a_volume_may_be_the_tmp():
    deployment = deploy(apps=[app(volumes=[volume(mountPath="/tmp")])])
    (container,) = deployment_spec(deployment, "web").inputs["spec"]["template"]["spec"][
        "containers"
    ]
    assert container["volumeMounts"] == [{"name": "data", "mountPath": "/tmp"}]


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("Data", "volumes[0].name 'Data' is not a DNS-1123 label"),
        ("data_1", "volumes[0].name 'data_1' is not a DNS-1123 label"),
        ("a" * 64, "volumes[0].name '" + "a" * 64 + "' is not a DNS-1123 label"),
        ("tmp", "volumes[0].name 'tmp' is the name of the pod's own /tmp volume"),
    ],
)
def test_volume_names_name_a_pod_volume(name, fragment):
    rejected("apps", f"apps[0] (web): {fragment}", apps=[app(volumes=[volume(name=name)])])


def test_volume_names_are_unique_in_an_app():
    rejected(
        "apps",
        "apps[0] (web): volumes[1].name 'data' is already a volume of this app",
        apps=[app(volumes=[volume(), volume(mountPath="/other")])],
    )


def test_two_apps_cannot_make_one_claim():
    rejected(
        "apps",
        "apps[1] (web-a): volumes[0] would be claim web-a-data, which is already "
        "apps[0] (web) volumes[0] (a-data)'s",
        apps=[
            app(volumes=[volume(name="a-data")]),
            app(name="web-a", path="/a", volumes=[volume()]),
        ],
    )


@pytest.mark.parametrize(
    ("volumes", "fragment"),
    [
        ({"name": "data"}, "volumes {'name': 'data'} is not a list of volumes"),
        (["data"], "volumes[0] 'data' is not an object"),
        ([{"name": "data", "mountPath": "/data"}], "volumes[0].size is missing"),
        ([volume(readOnly=True)], "volumes[0] has unknown keys ['readOnly']"),
    ],
)
def test_volumes_are_lists_of_name_mount_path_and_size(volumes, fragment):
    rejected("apps", f"apps[0] (web): {fragment}", apps=[app(volumes=volumes)])


# The disk check: every node an app may start on holds all the volumes, with room for the rest.


def test_the_room_for_volumes_is_the_disk_less_what_the_kubelet_keeps_free_and_the_system():
    # medium_3_0's 80 GB: less 15% (imagefs.available<15%, the same root filesystem) and 15 GB.
    assert SYSTEM_DISK_RESERVE_GB == 15
    assert volume_room_bytes(80) == (80 - 12 - 15) * BYTES_PER_GB
    assert volume_room_bytes(20) == (20 - 3 - 15) * BYTES_PER_GB


def test_the_manuals_room_for_volumes_is_the_checks():
    text = (PROJECT_DIR / "docs" / "apps.md").read_text().split("### Volumes\n", 1)[1]
    rows = re.findall(r"^\| `(\w+)` \| (\d+) GB \| (\d+) GB \|$", text, re.M)
    assert len(rows) >= 6
    for bundle_id, disk_gb, room_gb in rows:
        assert BUNDLES[bundle_id].disk_gb == int(disk_gb)
        assert volume_room_bytes(int(disk_gb)) == int(room_gb) * BYTES_PER_GB, bundle_id


def test_volumes_that_fill_the_servers_disk_are_refused_naming_the_bundle_that_holds_them():
    # small_3_0's 60 GB leave 36 GB: 2 x 17Gi (36.5 GB) do not fit, medium_3_0's 53 GB do.
    message = rejected(
        "apps",
        "the apps' volumes claim 36.5 GB",
        "apps[0] (web) volumes[0] (data) 17Gi, apps[1] (db) volumes[0] (data) 17Gi",
        "the small_3_0 server's 60 GB disk leaves them 36 GB",
        "60 GB less the 15% the kubelet keeps free and 15 GB for the OS, k3s and the images",
        "set bundleId: the cheapest bundle whose disk holds them is medium_3_0 (80 GB, USD 24/month)",
        bundleId="small_3_0",
        apps=[
            app(volumes=[volume(size="17Gi")]),
            app(name="db", path="/db", volumes=[volume(size="17Gi")]),
        ],
    )
    assert "lower the volumes' sizes" in message


def test_volumes_that_just_fit_the_servers_disk_are_deployed():
    # 33Gi is 35.4 GB of small_3_0's 36 GB.
    deployment = deploy(bundleId="small_3_0", apps=[app(volumes=[volume(size="33Gi")])])
    assert deployment.one(CLAIM).inputs["spec"]["resources"]["requests"]["storage"] == "33Gi"


def test_volumes_must_fit_the_agents_disks_too():
    # An app may start on any node; micro_3_0 agents' 40 GB leave 19 GB.
    rejected(
        "apps",
        "the micro_3_0 agents' 40 GB disk leaves them 19 GB",
        "set agentBundleId: the cheapest bundle whose disk holds them is small_3_0",
        bundleId="medium_3_0",
        agentCount=1,
        agentBundleId="micro_3_0",
        apps=[app(volumes=[volume(size="20Gi")])],
    )


def test_volumes_no_bundle_holds_are_refused_saying_so():
    rejected(
        "apps",
        "no Lightsail bundle's disk holds them",
        apps=[app(volumes=[volume(size="2Ti")])],
    )


def test_with_a_data_disk_the_servers_volumes_are_checked_against_it():
    """Issue 20: the data disk holds /var/lib/rancher/k3s, and so the local-path volumes; its floor
    must hold them. 30Gi fits small_3_0's own 60 GB disk but not a 40 GB data disk, and the fix
    names the smallest dataDiskGb that does (56 GB less 15% and 15 GB leaves 32.6 GB)."""
    big = [app(volumes=[volume(size="30Gi")])]
    deploy(bundleId="small_3_0", apps=big, dataDiskGb="0")
    rejected(
        "apps",
        "the servers' 40 GB data disk (dataDiskGb) leaves them",
        "set dataDiskGb: 56 holds them",
        bundleId="small_3_0",
        dataDiskGb="40",
        apps=big,
    )
    deploy(bundleId="small_3_0", apps=big, dataDiskGb="56")

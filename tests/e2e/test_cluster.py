"""The real thing on AWS, through the Pulumi Automation API: a throwaway stack goes up, the node turns
Ready, the app answers through Traefik, the outputs keep their contract, a second run changes nothing,
the consumer example deploys onto it, and everything is destroyed and forgotten.
"""

import json

import pytest
import yaml
from pulumi import automation as auto

from tests.e2e.aws import (
    CONSUMER_DIR,
    DEMO_APP,
    DEV_CONSUMERS,
    REGION,
    SECRET_OUTPUTS,
    fetch,
    kube_get,
    remove_stack,
    requires_aws,
    throwaway_backend,
    throwaway_cluster,
    throwaway_stack_name,
    timed_up,
    token_status,
    unexpected_changes,
    wait_for,
)

pytestmark = requires_aws()


@pytest.fixture(scope="module")
def backend():
    with throwaway_backend() as env:
        yield env


@pytest.fixture(scope="module")
def cluster(backend):
    with throwaway_cluster(
        "e2e", backend, apps=json.dumps([DEMO_APP]), consumers=json.dumps(DEV_CONSUMERS)
    ) as stack:
        yield stack, timed_up(stack, "create: 1 server").outputs


def test_the_node_turns_ready(cluster):
    _, outputs = cluster

    def node_ready():
        nodes = kube_get(outputs, "/api/v1/nodes")["items"]
        return nodes and all(
            any(
                c["type"] == "Ready" and c["status"] == "True" for c in node["status"]["conditions"]
            )
            for node in nodes
        )

    wait_for("every node Ready", node_ready, timeout=300)


def test_the_app_answers_through_traefik(cluster):
    _, outputs = cluster
    status, body = wait_for(
        "HTTP 200 from appUrl",
        lambda: (r := fetch(outputs["appUrl"].value))[0] == 200 and r,
        timeout=300,
    )
    assert "Hostname:" in body


def test_the_outputs_keep_their_contract(cluster):
    _, outputs = cluster
    # Secret as a whole, as the Automation API needs to flag them (see SECRET_OUTPUTS).
    assert {name for name, output in outputs.items() if output.secret} >= SECRET_OUTPUTS
    kubeconfig = yaml.safe_load(outputs["kubeconfig"].value)
    # k3s' kubeconfig names 127.0.0.1; the program points it at the static IP (rewrite_kubeconfig).
    assert (
        kubeconfig["clusters"][0]["cluster"]["server"]
        == f"https://{outputs['publicIp'].value}:6443"
    )
    assert outputs["kubeApiUrl"].value == f"https://{outputs['publicIp'].value}:6443"
    # k3s writes its token files as K10<CA hash>::<credentials> (k3s-io/k3s pkg/server/server.go,
    # writeToken with clientaccess.FormatToken).
    assert outputs["nodeToken"].value.startswith("K10")
    assert outputs["region"].value == REGION
    assert outputs["appNamespace"].value == "apps"


def test_a_second_run_changes_nothing(cluster):
    stack, _ = cluster
    # The CLI fails the preview on any change but a read (pulumi/pulumi pkg/engine/update.go,
    # HasChanges), which the Automation API raises as a CommandError; the summary holds the
    # version gate's read of the stack's own outputs, and nothing else (see unexpected_changes).
    preview = stack.preview(expect_no_changes=True)
    assert not unexpected_changes(preview.change_summary), preview.change_summary


def test_the_consumer_example_deploys_onto_the_cluster(cluster, backend):
    stack, outputs = cluster
    consumer = auto.create_stack(
        throwaway_stack_name("e2e-consumer"),
        work_dir=str(CONSUMER_DIR),
        opts=auto.LocalWorkspaceOptions(env_vars=backend),
    )
    try:
        # Self-managed backends name every stack organization/<project>/<stack>.
        consumer.set_config(
            "clusterStack", auto.ConfigValue(f"organization/lightsail-k3s/{stack.name}")
        )
        result = consumer.up(on_output=print)
        assert result.outputs["clusterApi"].value == outputs["kubeApiUrl"].value
        namespace, name = result.outputs["namespace"].value, result.outputs["deployment"].value

        def available():
            status = kube_get(outputs, f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}")[
                "status"
            ]
            return status.get("availableReplicas", 0) >= 1

        wait_for(f"deployment {namespace}/{name} available", available, timeout=300)
        # The consumer's token acts in its namespace and nowhere else.
        scoped = outputs["consumerKubeconfigs"].value[DEV_CONSUMERS[0]["name"]]
        assert token_status(scoped, f"/apis/apps/v1/namespaces/{namespace}/deployments") == 200
        assert token_status(scoped, "/api/v1/namespaces/kube-system/secrets") == 403
        assert token_status(scoped, "/api/v1/nodes") == 403
    finally:
        remove_stack(consumer, CONSUMER_DIR)


def test_an_app_that_gains_a_volume_is_recreated_and_its_claim_binds_on_a_node(cluster):
    """What the mock engine cannot show: the API server taking the Deployment's switch to Recreate
    (a replacement, pulumi/pulumi-kubernetes#2843), and pulumi-kubernetes counting a
    WaitForFirstConsumer claim ready while Pending, so the `up` reaches the pod that binds it."""
    stack, outputs = cluster
    with_volume = {**DEMO_APP, "volumes": [{"name": "data", "mountPath": "/data", "size": "1Gi"}]}
    stack.set_config("apps", auto.ConfigValue(json.dumps([with_volume])))
    stack.up(on_output=print)
    claim_path = "/api/v1/namespaces/apps/persistentvolumeclaims/whoami-data"
    wait_for(
        "claim apps/whoami-data Bound",
        lambda: kube_get(outputs, claim_path)["status"].get("phase") == "Bound",
        timeout=300,
    )
    volume = kube_get(
        outputs, f"/api/v1/persistentvolumes/{kube_get(outputs, claim_path)['spec']['volumeName']}"
    )
    # local-path pins the volume to the node it made it on.
    (term,) = volume["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"]
    assert term["matchExpressions"][0]["key"] == "kubernetes.io/hostname"
    deployment = kube_get(outputs, "/apis/apps/v1/namespaces/apps/deployments/whoami")
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    wait_for(
        "HTTP 200 from appUrl with the volume mounted",
        lambda: fetch(outputs["appUrl"].value)[0] == 200,
        timeout=300,
    )

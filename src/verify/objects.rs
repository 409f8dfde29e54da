//! The objects `verify network` creates in its own namespace: two DaemonSets of agnhost netexec
//! checker pods, a host-network checker DaemonSet, the test Service (ClusterIP + NodePort) and one
//! host-network `agnhost connect` pod per node for the `kubernetes` Service.

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use serde_json::{Value, json};

/// Kubernetes' e2e test image, pinned (netexec's `/dial`, `/hostname`, `/healthz`; `connect`).
pub const AGNHOST: &str = "registry.k8s.io/e2e-test-images/agnhost:2.53";
/// The checker pods' HTTP port.
pub const POD_PORT: u16 = 8080;
/// The host-network checkers' default HTTP port (and the next one for netexec's UDP server).
pub const HOST_PORT: u16 = 8090;
/// The test Service's port.
pub const SERVICE_PORT: u16 = 80;
/// The test Service's name.
pub const SERVICE: &str = "checkers";
/// The two pod-checker DaemonSets (two so that every node has a same-node peer).
pub const POD_SETS: [&str; 2] = ["pod-a", "pod-b"];
/// The host-network checker DaemonSet.
pub const HOST_SET: &str = "host";
/// The label every object carries.
pub const MANAGED: (&str, &str) = ("app.kubernetes.io/managed-by", "kubestrap-verify");

fn labels(extra: &[(&str, &str)]) -> Value {
    let mut map = serde_json::Map::new();
    map.insert(MANAGED.0.into(), MANAGED.1.into());
    for (k, v) in extra {
        map.insert((*k).into(), (*v).into());
    }
    Value::Object(map)
}

fn typed<K: serde::de::DeserializeOwned>(v: Value) -> Result<K, serde_json::Error> {
    serde_json::from_value(v)
}

/// The run's namespace; labelled for Pod Security admission's `privileged` level, since the host
/// checkers use the node's network (a cluster enforcing `baseline` by default would refuse them).
pub fn namespace(name: &str) -> Result<Namespace, serde_json::Error> {
    typed(json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": name, "labels": labels(&[("pod-security.kubernetes.io/enforce", "privileged")])}}))
}

/// A netexec DaemonSet of `image` on every node (every taint tolerated); with `host_port`, on the
/// node's network on that port.
pub fn checker_set(
    namespace: &str,
    name: &str,
    image: &str,
    host_port: Option<u16>,
) -> Result<DaemonSet, serde_json::Error> {
    let host = host_port.is_some();
    let (port, role) = match host_port {
        Some(port) => (port, "host"),
        None => (POD_PORT, "pod"),
    };
    let pod_labels = labels(&[("kubestrap.io/verify", role), ("kubestrap.io/set", name)]);
    typed(json!({"apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": name, "namespace": namespace, "labels": labels(&[])},
        "spec": {
            "selector": {"matchLabels": {"kubestrap.io/set": name}},
            "template": {"metadata": {"labels": pod_labels}, "spec": {
                "hostNetwork": host,
                "dnsPolicy": if host { "ClusterFirstWithHostNet" } else { "ClusterFirst" },
                "terminationGracePeriodSeconds": 1,
                "tolerations": [{"operator": "Exists"}],
                "automountServiceAccountToken": false,
                "containers": [{"name": "netexec", "image": image,
                    "args": ["netexec", format!("--http-port={port}"), format!("--udp-port={}", port + 1)],
                    "ports": [{"name": "http", "containerPort": port}],
                    "readinessProbe": {"httpGet": {"path": "/healthz", "port": port}, "periodSeconds": 1}}]}}}}))
}

/// The test Service over every pod checker: a ClusterIP and a NodePort.
pub fn service(namespace: &str) -> Result<Service, serde_json::Error> {
    typed(json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": SERVICE, "namespace": namespace, "labels": labels(&[])},
        "spec": {"type": "NodePort", "selector": {"kubestrap.io/verify": "pod"},
            "ports": [{"name": "http", "port": SERVICE_PORT, "targetPort": POD_PORT, "protocol": "TCP"}]}}))
}

/// The connect pod's name for a node (`api-<node>`).
pub fn api_pod_name(node: &str) -> String {
    format!("api-{node}")
}

/// A pod on `node`'s host network that opens one TCP connection to `target` (`ip:443`): `agnhost
/// connect` exits 0 when the connection was accepted, 1 with TIMEOUT/REFUSED/OTHER otherwise. A TCP
/// connect is what reaching the API server's ClusterIP needs; netexec's `/dial` speaks plain HTTP
/// and fails on the TLS port whether or not the port was reached.
pub fn api_connect_pod(
    namespace: &str,
    node: &str,
    target: &str,
    image: &str,
) -> Result<Pod, serde_json::Error> {
    typed(json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": api_pod_name(node), "namespace": namespace,
            "labels": labels(&[("kubestrap.io/verify", "api")])},
        "spec": {"nodeName": node, "hostNetwork": true, "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 1, "automountServiceAccountToken": false,
            "tolerations": [{"operator": "Exists"}],
            "containers": [{"name": "connect", "image": image,
                "args": ["connect", target, "--timeout=5s"]}]}}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkers_tolerate_every_taint_and_the_host_set_uses_the_node_network() {
        let pods = checker_set("ns", "pod-a", AGNHOST, None).unwrap();
        let host = checker_set(
            "ns",
            HOST_SET,
            "mirror.example/agnhost:2.53",
            Some(HOST_PORT),
        )
        .unwrap();
        let spec = |d: &DaemonSet| d.spec.clone().unwrap().template.spec.unwrap();
        assert_eq!(
            spec(&pods).tolerations.unwrap()[0].operator.as_deref(),
            Some("Exists")
        );
        assert_eq!(spec(&pods).host_network, Some(false));
        assert_eq!(spec(&host).host_network, Some(true));
        assert_eq!(
            spec(&host).containers[0].args.clone().unwrap(),
            ["netexec", "--http-port=8090", "--udp-port=8091"]
        );
        let svc = service("ns").unwrap().spec.unwrap();
        assert_eq!(svc.type_.as_deref(), Some("NodePort"));
        assert_eq!(
            spec(&host).containers[0].image.as_deref(),
            Some("mirror.example/agnhost:2.53")
        );
        let ns = namespace("kubestrap-verify-abc123").unwrap();
        assert_eq!(
            ns.metadata.labels.unwrap()["pod-security.kubernetes.io/enforce"],
            "privileged"
        );
        let pod = api_connect_pod("ns", "node1", "10.96.0.1:443", AGNHOST).unwrap();
        assert_eq!(pod.spec.unwrap().node_name.as_deref(), Some("node1"));
    }
}

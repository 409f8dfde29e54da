//! The EndpointSlice controller: for each Service with a selector and each of its IP families,
//! EndpointSlices (`<service>-<suffix>`, labels `kubernetes.io/service-name` and
//! `endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io`, owned by the
//! Service) with one endpoint per selected pod that has an address of that family: its
//! addresses, ready/serving/terminating conditions, nodeName, zone, hostname and targetRef;
//! endpoints grouped by resolved port set, at most --max-endpoints-per-slice a slice, and an
//! empty placeholder slice when there are none. The Service's deletion removes them through
//! the garbage collector (ownerReferences), as upstream.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use serde_json::{Value, json};

use super::endpoints::{
    endpoint_labels, family_of, find_port, pod_ips, selected_pods, service_families,
    should_be_in_endpoints,
};
use super::informer::{Informer, Informers, key_of};
use super::podutil::{self, is_deleting, is_ready};
use super::runner::Reconciler;
use crate::common::client::ApiClient;
use crate::logf;

const NAME: &str = "endpointslice-controller";
pub const MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";
pub const CONTROLLER: &str = "endpointslice-controller.k8s.io";
pub const SERVICE_NAME: &str = "kubernetes.io/service-name";

pub struct EndpointSliceController {
    services: Arc<Informer>,
    pods: Arc<Informer>,
    nodes: Arc<Informer>,
    slices: Arc<Informer>,
    max_per_slice: usize,
}

impl EndpointSliceController {
    pub fn new(informers: &Informers, max_per_slice: usize) -> EndpointSliceController {
        EndpointSliceController {
            services: informers.services(),
            pods: informers.pods(),
            nodes: informers.nodes(),
            slices: informers.endpoint_slices(),
            max_per_slice,
        }
    }
}

/// podToEndpoint for one address family; None when the pod has no address of that family.
pub fn endpoint_of(
    pod: &Value,
    service: &Value,
    family: &str,
    zone: Option<&str>,
) -> Option<Value> {
    let addresses: Vec<String> = pod_ips(pod)
        .into_iter()
        .filter(|ip| family_of(ip) == family)
        .collect();
    if addresses.is_empty() {
        return None;
    }
    let serving = is_ready(pod);
    let terminating = is_deleting(pod);
    let ready = service["spec"]["publishNotReadyAddresses"].as_bool() == Some(true)
        || (serving && !terminating);
    let mut endpoint = json!({
        "addresses": addresses,
        "conditions": {"ready": ready, "serving": serving, "terminating": terminating},
        "targetRef": {"kind": "Pod", "namespace": pod["metadata"]["namespace"], "name": pod["metadata"]["name"], "uid": pod["metadata"]["uid"]},
    });
    if let Some(node) = pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) {
        endpoint["nodeName"] = json!(node);
    }
    if let Some(zone) = zone {
        endpoint["zone"] = json!(zone);
    }
    if let Some(hostname) = pod["spec"]["hostname"].as_str().filter(|h| !h.is_empty())
        && pod["spec"]["subdomain"] == service["metadata"]["name"]
    {
        endpoint["hostname"] = json!(hostname);
    }
    Some(endpoint)
}

/// getEndpointPorts: each Service port resolved against the pod (unresolvable ones left out).
pub fn endpoint_ports(pod: &Value, service: &Value) -> Vec<Value> {
    service["spec"]["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|sp| {
            let number = find_port(pod, sp)?;
            let mut port = json!({"name": sp["name"].as_str().unwrap_or_default(), "port": number, "protocol": sp["protocol"].as_str().unwrap_or("TCP")});
            if !sp["appProtocol"].is_null() {
                port["appProtocol"] = sp["appProtocol"].clone();
            }
            Some(port)
        })
        .collect()
}

/// The wanted slices of one address family: (ports, endpoints) chunks, sorted for stability.
pub fn desired_slices(
    service: &Value,
    pods: &[Arc<Value>],
    family: &str,
    zones: &BTreeMap<String, String>,
    max_per_slice: usize,
) -> Vec<(Value, Vec<Value>)> {
    let mut groups: BTreeMap<String, (Value, Vec<Value>)> = BTreeMap::new();
    for pod in pods {
        if !should_be_in_endpoints(pod, true) {
            continue;
        }
        let node = pod["spec"]["nodeName"].as_str().unwrap_or_default();
        let Some(endpoint) = endpoint_of(pod, service, family, zones.get(node).map(String::as_str))
        else {
            continue;
        };
        let ports = json!(endpoint_ports(pod, service));
        groups
            .entry(ports.to_string())
            .or_insert_with(|| (ports, Vec::new()))
            .1
            .push(endpoint);
    }
    let mut out = Vec::new();
    for (_, (ports, mut endpoints)) in groups {
        endpoints.sort_by_key(|e| {
            e["targetRef"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        });
        for chunk in endpoints.chunks(max_per_slice.max(1)) {
            out.push((ports.clone(), chunk.to_vec()));
        }
    }
    out
}

fn list_or_null(items: &[Value]) -> Value {
    if items.is_empty() {
        Value::Null
    } else {
        json!(items)
    }
}

impl EndpointSliceController {
    /// reconcileByAddressType, simplified: desired chunks reuse the existing slices with the same
    /// ports (updated only when different), the rest are created, leftovers deleted.
    async fn sync(
        &self,
        client: &ApiClient,
        service: &Value,
        pods: &[Arc<Value>],
        zones: &BTreeMap<String, String>,
    ) -> Result<()> {
        let ns = service["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default();
        let name = service["metadata"]["name"].as_str().unwrap_or_default();
        let uid = &service["metadata"]["uid"];
        let mut labels = endpoint_labels(service);
        labels.remove(SERVICE_NAME);
        labels.remove(MANAGED_BY);
        labels.insert(SERVICE_NAME.into(), json!(name));
        labels.insert(MANAGED_BY.into(), json!(CONTROLLER));
        let owner = json!([{"apiVersion": "v1", "kind": "Service", "name": name, "uid": uid, "controller": true, "blockOwnerDeletion": true}]);
        let mut existing: Vec<Arc<Value>> = self
            .slices
            .list_namespace(ns)
            .into_iter()
            .filter(|s| {
                s["metadata"]["labels"][SERVICE_NAME] == name
                    && s["metadata"]["labels"][MANAGED_BY] == CONTROLLER
            })
            .filter(|s| podutil::controller_ref(s).is_none_or(|r| r["uid"] == *uid))
            .collect();
        existing.sort_by_key(|s| {
            s["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        });
        let families = service_families(service);
        let path = format!("/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices");
        let mut keep: Vec<String> = Vec::new();
        for family in &families {
            let mut wanted = desired_slices(service, pods, family, zones, self.max_per_slice);
            if wanted.is_empty() {
                wanted.push((json!([]), Vec::new()));
            }
            let mut candidates: Vec<&Arc<Value>> = existing
                .iter()
                .filter(|s| s["addressType"] == family.as_str())
                .collect();
            for (ports, endpoints) in wanted {
                let ports_list = ports.as_array().cloned().unwrap_or_default();
                let body = |base: Option<&Value>| {
                    let mut slice = match base {
                        Some(b) => b.clone(),
                        None => {
                            json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": {"generateName": format!("{name}-"), "namespace": ns}})
                        }
                    };
                    slice["metadata"]["labels"] = Value::Object(labels.clone());
                    slice["metadata"]["ownerReferences"] = owner.clone();
                    slice["addressType"] = json!(family);
                    slice["endpoints"] = list_or_null(&endpoints);
                    slice["ports"] = list_or_null(&ports_list);
                    slice
                };
                let reuse = candidates
                    .iter()
                    .position(|s| s["ports"].as_array().cloned().unwrap_or_default() == ports_list)
                    .or(if candidates.is_empty() { None } else { Some(0) });
                match reuse.map(|i| candidates.remove(i)) {
                    Some(current) => {
                        keep.push(key_of(current));
                        let updated = body(Some(current));
                        if updated != **current {
                            let slice_name =
                                current["metadata"]["name"].as_str().unwrap_or_default();
                            client
                                .replace(&format!("{path}/{slice_name}"), &updated)
                                .await?;
                        }
                    }
                    None => {
                        client.create(&path, &body(None)).await?;
                    }
                }
            }
        }
        for stale in existing.iter().filter(|s| !keep.contains(&key_of(s))) {
            let slice_name = stale["metadata"]["name"].as_str().unwrap_or_default();
            match client.delete(&format!("{path}/{slice_name}")).await {
                Ok(_) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

impl Reconciler for EndpointSliceController {
    fn name(&self) -> &'static str {
        NAME
    }

    fn informers(&self) -> Vec<Arc<Informer>> {
        vec![
            self.services.clone(),
            self.pods.clone(),
            self.nodes.clone(),
            self.slices.clone(),
        ]
    }

    async fn reconcile(&mut self, client: &ApiClient) -> Result<Option<Duration>> {
        let zones: BTreeMap<String, String> = self
            .nodes
            .list()
            .iter()
            .filter_map(|n| {
                let zone = n["metadata"]["labels"]["topology.kubernetes.io/zone"].as_str()?;
                Some((
                    n["metadata"]["name"].as_str()?.to_string(),
                    zone.to_string(),
                ))
            })
            .collect();
        for service in self.services.list() {
            let Some(pods) = selected_pods(&service, &self.pods) else {
                continue;
            };
            if let Err(e) = self.sync(client, &service, &pods, &zones).await {
                logf!(super::COMPONENT, "{NAME}: sync {}: {e}", key_of(&service));
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, ips: &[&str], ready: bool, deleting: bool) -> Arc<Value> {
        let mut p = json!({"metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}")},
            "spec": {"nodeName": "node3", "containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 8080}]}]},
            "status": {"phase": "Running", "podIP": ips[0], "podIPs": ips.iter().map(|ip| json!({"ip": ip})).collect::<Vec<_>>(),
                       "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]}});
        if deleting {
            p["metadata"]["deletionTimestamp"] = json!("2024-01-01T00:00:00Z");
        }
        Arc::new(p)
    }

    fn service() -> Value {
        json!({"metadata": {"name": "web", "namespace": "default"}, "spec": {"selector": {"app": "web"}, "ipFamilies": ["IPv4", "IPv6"],
               "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": "http"}]}})
    }

    #[test]
    fn endpoints_carry_conditions_node_and_the_familys_addresses() {
        let zones = BTreeMap::from([("node3".to_string(), "zone-a".to_string())]);
        let pods = vec![
            pod("a", &["10.244.2.4", "fd00::4"], true, false),
            pod("b", &["10.244.2.5"], false, false),
            pod("c", &["10.244.2.6"], true, true),
        ];
        let v4 = desired_slices(&service(), &pods, "IPv4", &zones, 100);
        assert_eq!(v4.len(), 1);
        let (ports, endpoints) = &v4[0];
        assert_eq!(
            ports,
            &json!([{"name": "http", "port": 8080, "protocol": "TCP"}])
        );
        assert_eq!(endpoints.len(), 3);
        assert_eq!(endpoints[0]["addresses"], json!(["10.244.2.4"]));
        assert_eq!(
            endpoints[0]["conditions"],
            json!({"ready": true, "serving": true, "terminating": false})
        );
        assert_eq!(endpoints[0]["nodeName"], "node3");
        assert_eq!(endpoints[0]["zone"], "zone-a");
        assert_eq!(
            endpoints[1]["conditions"],
            json!({"ready": false, "serving": false, "terminating": false})
        );
        assert_eq!(
            endpoints[2]["conditions"],
            json!({"ready": false, "serving": true, "terminating": true})
        );
        let v6 = desired_slices(&service(), &pods, "IPv6", &zones, 100);
        assert_eq!(v6[0].1.len(), 1);
        assert_eq!(v6[0].1[0]["addresses"], json!(["fd00::4"]));
    }

    #[test]
    fn slices_hold_at_most_the_configured_number_of_endpoints() {
        let pods: Vec<Arc<Value>> = (0..5)
            .map(|i| pod(&format!("p{i}"), &[&format!("10.0.0.{i}")], true, false))
            .collect();
        let slices = desired_slices(&service(), &pods, "IPv4", &BTreeMap::new(), 2);
        assert_eq!(
            slices.iter().map(|(_, e)| e.len()).collect::<Vec<_>>(),
            vec![2, 2, 1]
        );
    }
}

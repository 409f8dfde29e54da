//! The Endpoints controller: for each Service with a selector, an Endpoints object of the same
//! name listing the selected pods' addresses of the Service's primary IP family — ready pods in
//! `addresses`, others in `notReadyAddresses` (all ready with publishNotReadyAddresses),
//! terminating pods left out — per resolved port (targetPort by number or container port name),
//! repacked into subsets as the real controller does; deleted with its Service. Also the pod and
//! port rules the EndpointSlice controller shares.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use serde_json::{Map, Value, json};

use super::informer::{Informer, Informers, key_of};
use super::podutil::{is_deleting, is_ready};
use super::runner::Reconciler;
use crate::common::client::ApiClient;
use crate::common::{labels, time};
use crate::logf;

const NAME: &str = "endpoints-controller";
const TRIGGER_TIME: &str = "endpoints.kubernetes.io/last-change-trigger-time";
const OVER_CAPACITY: &str = "endpoints.kubernetes.io/over-capacity";
const HEADLESS: &str = "service.kubernetes.io/headless";
const MAX_ADDRESSES: usize = 1000;

/// The pods of a Service's namespace its (non-empty) selector selects; None without a selector
/// (such Services get no endpoints from the controllers).
pub fn selected_pods(service: &Value, pods: &Informer) -> Option<Vec<Arc<Value>>> {
    let selector = &service["spec"]["selector"];
    if selector.as_object().is_none_or(|s| s.is_empty()) {
        return None;
    }
    let ns = service["metadata"]["namespace"]
        .as_str()
        .unwrap_or_default();
    let mut selected: Vec<Arc<Value>> = pods
        .list_namespace(ns)
        .into_iter()
        .filter(|p| labels::map_matches(selector, &p["metadata"]["labels"]))
        .collect();
    selected.sort_by_key(|p| {
        p["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    });
    Some(selected)
}

/// The pod's IPs (status.podIPs, or status.podIP).
pub fn pod_ips(pod: &Value) -> Vec<String> {
    let listed: Vec<String> = pod["status"]["podIPs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["ip"].as_str().map(str::to_string))
        .collect();
    if !listed.is_empty() {
        return listed;
    }
    pod["status"]["podIP"]
        .as_str()
        .filter(|ip| !ip.is_empty())
        .map(|ip| vec![ip.to_string()])
        .unwrap_or_default()
}

/// `IPv4` or `IPv6` for an address.
pub fn family_of(ip: &str) -> &'static str {
    if ip.contains(':') { "IPv6" } else { "IPv4" }
}

/// ShouldPodBeInEndpoints: not finished, has an IP, and not terminating unless included.
pub fn should_be_in_endpoints(pod: &Value, include_terminating: bool) -> bool {
    !matches!(
        pod["status"]["phase"].as_str(),
        Some("Succeeded" | "Failed")
    ) && !pod_ips(pod).is_empty()
        && (include_terminating || !is_deleting(pod))
}

/// podutil.FindPort: a numeric targetPort as is, a named one from the containers' (and
/// restartable init containers') ports of the same protocol.
pub fn find_port(pod: &Value, service_port: &Value) -> Option<i64> {
    let protocol = service_port["protocol"].as_str().unwrap_or("TCP");
    match &service_port["targetPort"] {
        Value::Number(n) => n.as_i64(),
        Value::String(name) => {
            if let Ok(n) = name.parse::<i64>() {
                return Some(n);
            }
            let sidecars = pod["spec"]["initContainers"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|c| c["restartPolicy"] == "Always");
            pod["spec"]["containers"]
                .as_array()
                .into_iter()
                .flatten()
                .chain(sidecars)
                .flat_map(|c| c["ports"].as_array().cloned().unwrap_or_default())
                .find(|p| {
                    p["name"].as_str() == Some(name)
                        && p["protocol"].as_str().unwrap_or("TCP") == protocol
                })
                .and_then(|p| p["containerPort"].as_i64())
        }
        _ => service_port["port"].as_i64(),
    }
}

/// The Service's IP families (spec.ipFamilies, else the family of its clusterIP).
pub fn service_families(service: &Value) -> Vec<String> {
    let listed: Vec<String> = service["spec"]["ipFamilies"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f.as_str().map(str::to_string))
        .collect();
    if !listed.is_empty() {
        return listed;
    }
    match service["spec"]["clusterIP"].as_str() {
        Some(ip) if ip != "None" && !ip.is_empty() => vec![family_of(ip).to_string()],
        _ => vec!["IPv4".to_string()],
    }
}

fn is_headless(service: &Value) -> bool {
    service["spec"]["clusterIP"].as_str() == Some("None")
}

/// The Service's labels as its endpoints carry them, with the headless label set or removed.
pub fn endpoint_labels(service: &Value) -> Map<String, Value> {
    let mut out = service["metadata"]["labels"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    if is_headless(service) {
        out.insert(HEADLESS.into(), json!(""));
    } else {
        out.remove(HEADLESS);
    }
    out
}

fn port_of(service_port: &Value, number: i64) -> Value {
    let mut port =
        json!({"port": number, "protocol": service_port["protocol"].as_str().unwrap_or("TCP")});
    if let Some(name) = service_port["name"].as_str().filter(|n| !n.is_empty()) {
        port["name"] = json!(name);
    }
    if !service_port["appProtocol"].is_null() {
        port["appProtocol"] = service_port["appProtocol"].clone();
    }
    port
}

/// The subsets of a Service's Endpoints (syncService + RepackSubsets): every address with the
/// set of ports it serves, addresses grouped by identical port sets, sorted.
pub fn subsets(service: &Value, pods: &[Arc<Value>]) -> Vec<Value> {
    let tolerate_unready = service["spec"]["publishNotReadyAddresses"].as_bool() == Some(true);
    let family = service_families(service)
        .first()
        .cloned()
        .unwrap_or_else(|| "IPv4".into());
    let service_ports = service["spec"]["ports"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    // address (JSON text) -> (address, ready, ports)
    let mut by_address: BTreeMap<String, (Value, bool, BTreeSet<String>)> = BTreeMap::new();
    for pod in pods {
        if !should_be_in_endpoints(pod, tolerate_unready) {
            continue;
        }
        let Some(ip) = pod_ips(pod).into_iter().find(|ip| family_of(ip) == family) else {
            continue;
        };
        let mut address = json!({"ip": ip, "targetRef": {"kind": "Pod", "namespace": pod["metadata"]["namespace"], "name": pod["metadata"]["name"], "uid": pod["metadata"]["uid"]}});
        if let Some(node) = pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) {
            address["nodeName"] = json!(node);
        }
        if let Some(hostname) = pod["spec"]["hostname"].as_str().filter(|h| !h.is_empty())
            && pod["spec"]["subdomain"] == service["metadata"]["name"]
        {
            address["hostname"] = json!(hostname);
        }
        let ready = tolerate_unready || is_ready(pod);
        let mut ports = BTreeSet::new();
        if service_ports.is_empty() {
            if !is_headless(service) {
                continue;
            }
        } else {
            for sp in &service_ports {
                if let Some(number) = find_port(pod, sp) {
                    ports.insert(port_of(sp, number).to_string());
                }
            }
            if ports.is_empty() {
                continue;
            }
        }
        let key = address.to_string();
        by_address.insert(key, (address, ready, ports));
    }
    // port set -> addresses
    let mut groups: BTreeMap<Vec<String>, (Vec<Value>, Vec<Value>)> = BTreeMap::new();
    for (_, (address, ready, ports)) in by_address {
        let group = groups.entry(ports.into_iter().collect()).or_default();
        if ready {
            group.0.push(address);
        } else {
            group.1.push(address);
        }
    }
    let mut out: Vec<Value> = groups
        .into_iter()
        .map(|(ports, (mut ready, mut not_ready))| {
            let by_ip = |a: &Value| {
                (
                    a["ip"].as_str().unwrap_or_default().to_string(),
                    a["targetRef"]["uid"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                )
            };
            ready.sort_by_key(by_ip);
            not_ready.sort_by_key(by_ip);
            let mut subset = json!({});
            if !ready.is_empty() {
                subset["addresses"] = json!(ready);
            }
            if !not_ready.is_empty() {
                subset["notReadyAddresses"] = json!(not_ready);
            }
            let ports: Vec<Value> = ports
                .iter()
                .filter_map(|p| serde_json::from_str(p).ok())
                .collect();
            if !ports.is_empty() {
                subset["ports"] = json!(ports);
            }
            subset
        })
        .collect();
    out.sort_by_key(|s| s.to_string());
    out
}

/// Caps the addresses at 1000 (the real controller's maxCapacity); true when it truncated.
fn truncate(subsets: &mut [Value]) -> bool {
    let total: usize = subsets
        .iter()
        .map(|s| {
            s["addresses"].as_array().map_or(0, Vec::len)
                + s["notReadyAddresses"].as_array().map_or(0, Vec::len)
        })
        .sum();
    if total <= MAX_ADDRESSES {
        return false;
    }
    let mut left = MAX_ADDRESSES;
    for subset in subsets.iter_mut() {
        for field in ["addresses", "notReadyAddresses"] {
            if let Some(list) = subset[field].as_array_mut() {
                list.truncate(left);
                left -= list.len();
            }
        }
    }
    true
}

pub struct EndpointsController {
    services: Arc<Informer>,
    pods: Arc<Informer>,
    endpoints: Arc<Informer>,
    /// Services with a selector seen in earlier passes: their Endpoints go when they do.
    managed: BTreeSet<String>,
    first_pass: bool,
}

impl EndpointsController {
    pub fn new(informers: &Informers) -> EndpointsController {
        EndpointsController {
            services: informers.services(),
            pods: informers.pods(),
            endpoints: informers.endpoints(),
            managed: BTreeSet::new(),
            first_pass: true,
        }
    }

    async fn sync(&self, client: &ApiClient, service: &Value, pods: &[Arc<Value>]) -> Result<()> {
        let ns = service["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default();
        let name = service["metadata"]["name"].as_str().unwrap_or_default();
        let mut subsets = subsets(service, pods);
        let truncated = truncate(&mut subsets);
        let labels = endpoint_labels(service);
        let current = self.endpoints.get(&key_of(service));
        if let Some(current) = &current {
            let same_subsets =
                current["subsets"].as_array().cloned().unwrap_or_default() == subsets;
            let same_labels = current["metadata"]["labels"]
                .as_object()
                .cloned()
                .unwrap_or_default()
                == labels;
            let same_capacity = current["metadata"]["annotations"][OVER_CAPACITY].as_str()
                == truncated.then_some("truncated");
            if same_subsets && same_labels && same_capacity {
                return Ok(());
            }
        }
        let mut endpoints = match &current {
            Some(c) => (**c).clone(),
            None => {
                json!({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": name, "namespace": ns}})
            }
        };
        endpoints["metadata"]["labels"] = Value::Object(labels);
        endpoints["metadata"]["annotations"][TRIGGER_TIME] = json!(time::now());
        if truncated {
            endpoints["metadata"]["annotations"][OVER_CAPACITY] = json!("truncated");
        } else if let Some(a) = endpoints["metadata"]["annotations"].as_object_mut() {
            a.remove(OVER_CAPACITY);
        }
        if subsets.is_empty() {
            endpoints.as_object_mut().map(|o| o.remove("subsets"));
        } else {
            endpoints["subsets"] = json!(subsets);
        }
        if current.is_some() {
            client
                .replace(
                    &format!("/api/v1/namespaces/{ns}/endpoints/{name}"),
                    &endpoints,
                )
                .await?;
        } else {
            match client
                .create(&format!("/api/v1/namespaces/{ns}/endpoints"), &endpoints)
                .await
            {
                Ok(_) => {}
                Err(e) if e.is_conflict() => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

impl Reconciler for EndpointsController {
    fn name(&self) -> &'static str {
        NAME
    }

    fn informers(&self) -> Vec<Arc<Informer>> {
        vec![
            self.services.clone(),
            self.pods.clone(),
            self.endpoints.clone(),
        ]
    }

    async fn reconcile(&mut self, client: &ApiClient) -> Result<Option<Duration>> {
        let mut seen = BTreeSet::new();
        for service in self.services.list() {
            let Some(pods) = selected_pods(&service, &self.pods) else {
                continue;
            };
            seen.insert(key_of(&service));
            if let Err(e) = self.sync(client, &service, &pods).await {
                logf!(super::COMPONENT, "{NAME}: sync {}: {e}", key_of(&service));
            }
        }
        let all_services: BTreeSet<String> =
            self.services.list().iter().map(|s| key_of(s)).collect();
        let leftovers: Vec<String> = self
            .endpoints
            .list()
            .iter()
            .filter(|e| {
                let key = key_of(e);
                !all_services.contains(&key)
                    && (self.managed.contains(&key)
                        || (self.first_pass
                            && !e["metadata"]["annotations"][TRIGGER_TIME].is_null()))
            })
            .map(|e| key_of(e))
            .collect();
        for key in leftovers {
            let (ns, name) = key.split_once('/').unwrap_or(("", key.as_str()));
            match client
                .delete(&format!("/api/v1/namespaces/{ns}/endpoints/{name}"))
                .await
            {
                Ok(_) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => logf!(super::COMPONENT, "{NAME}: delete endpoints {key}: {e}"),
            }
        }
        self.managed = seen;
        self.first_pass = false;
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, ip: &str, ready: bool, port_name: &str) -> Arc<Value> {
        Arc::new(
            json!({"metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"), "labels": {"app": "web"}},
            "spec": {"nodeName": "node2", "containers": [{"name": "c", "ports": [{"name": port_name, "containerPort": 8080}]}]},
            "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}], "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]}}),
        )
    }

    fn service(ports: Value) -> Value {
        json!({"metadata": {"name": "web", "namespace": "default", "labels": {"tier": "front"}},
               "spec": {"selector": {"app": "web"}, "clusterIP": "10.96.0.10", "ipFamilies": ["IPv4"], "ports": ports}})
    }

    #[test]
    fn ready_and_unready_pods_split_by_resolved_port() {
        let svc =
            service(json!([{"name": "http", "port": 80, "protocol": "TCP", "targetPort": "http"}]));
        let pods = vec![
            pod("a", "10.244.1.5", true, "http"),
            pod("b", "10.244.2.5", false, "http"),
            pod("c", "10.244.2.6", true, "other"),
        ];
        let subsets = subsets(&svc, &pods);
        assert_eq!(subsets.len(), 1, "{subsets:?}");
        assert_eq!(subsets[0]["addresses"][0]["ip"], "10.244.1.5");
        assert_eq!(subsets[0]["addresses"][0]["nodeName"], "node2");
        assert_eq!(subsets[0]["addresses"][0]["targetRef"]["name"], "a");
        assert_eq!(subsets[0]["notReadyAddresses"][0]["ip"], "10.244.2.5");
        assert_eq!(
            subsets[0]["ports"],
            json!([{"name": "http", "port": 8080, "protocol": "TCP"}])
        );
        let numeric = service(json!([{"port": 80, "protocol": "TCP", "targetPort": 9090}]));
        let subsets = super::subsets(&numeric, &pods);
        assert_eq!(subsets[0]["addresses"].as_array().unwrap().len(), 2);
        assert_eq!(
            subsets[0]["ports"],
            json!([{"port": 9090, "protocol": "TCP"}])
        );
    }

    #[test]
    fn terminating_and_ipless_pods_are_left_out_unless_published() {
        let svc = service(json!([{"port": 80, "protocol": "TCP", "targetPort": 80}]));
        let mut terminating = (*pod("t", "10.244.1.9", true, "x")).clone();
        terminating["metadata"]["deletionTimestamp"] = json!("2024-01-01T00:00:00Z");
        let mut no_ip = (*pod("n", "", true, "x")).clone();
        no_ip["status"]["podIPs"] = json!([]);
        let pods = vec![Arc::new(terminating), Arc::new(no_ip)];
        assert!(subsets(&svc, &pods).is_empty());
        let mut published = svc.clone();
        published["spec"]["publishNotReadyAddresses"] = json!(true);
        assert_eq!(
            subsets(&published, &pods)[0]["addresses"][0]["ip"],
            "10.244.1.9"
        );
    }

    #[test]
    fn services_without_selectors_are_not_managed_and_labels_follow_headlessness() {
        let mut svc = service(json!([]));
        svc["spec"]["selector"] = json!({});
        let informer_free = endpoint_labels(&svc);
        assert_eq!(informer_free.get("tier"), Some(&json!("front")));
        svc["spec"]["clusterIP"] = json!("None");
        assert_eq!(endpoint_labels(&svc).get(HEADLESS), Some(&json!("")));
        assert_eq!(family_of("fd00::1"), "IPv6");
        assert_eq!(
            service_families(&json!({"spec": {"clusterIP": "fd00::10"}})),
            vec!["IPv6"]
        );
    }
}

//! What the real API server creates at start-up: system namespaces, the bootstrap RBAC policy,
//! system PriorityClasses, the `kubernetes` Service and its endpoints, the
//! extension-apiserver-authentication ConfigMap, and its identity Lease.

use base64::Engine;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::Server;
use super::policy;
use super::status::{ApiError, ApiResult};
use crate::common::time;

impl Server {
    fn rt(&self, group: &str, plural: &str) -> ApiResult<super::registry::ResourceType> {
        let version = "v1";
        self.registry_type(group, version, plural)
            .ok_or_else(|| ApiError::internal(format!("{plural} type missing")))
    }

    pub async fn create_defaults(&self) -> ApiResult<()> {
        let namespaces = self.rt("", "namespaces")?;
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            self.ensure(
                &namespaces,
                json!({"metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns}}, "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}),
            )
            .await?;
        }
        let cluster_roles = self.rt("rbac.authorization.k8s.io", "clusterroles")?;
        for role in policy::cluster_roles() {
            self.reconcile_default(&cluster_roles, role).await?;
        }
        let bindings = self.rt("rbac.authorization.k8s.io", "clusterrolebindings")?;
        for binding in policy::cluster_role_bindings() {
            self.ensure(&bindings, binding).await?;
        }
        for object in policy::namespaced() {
            let plural = if object["kind"] == "Role" {
                "roles"
            } else {
                "rolebindings"
            };
            self.ensure(&self.rt("rbac.authorization.k8s.io", plural)?, object)
                .await?;
        }
        let classes = self.rt("scheduling.k8s.io", "priorityclasses")?;
        for (name, value, description) in [
            (
                "system-node-critical",
                2000001000,
                "Used for system critical pods that must not be moved from their current node.",
            ),
            (
                "system-cluster-critical",
                2000000000,
                "Used for system critical pods that must run in the cluster, but can be moved to another node if necessary.",
            ),
        ] {
            self.ensure(
                &classes,
                json!({"metadata": {"name": name}, "value": value, "globalDefault": false, "description": description, "preemptionPolicy": "PreemptLowerPriority"}),
            )
            .await?;
        }
        self.ensure_kubernetes_service().await?;
        self.ensure_kubernetes_slice().await?;
        self.publish_authentication_config().await
    }

    /// Creates a default ClusterRole, or restores its rules when it is marked autoupdate.
    async fn reconcile_default(
        &self,
        rt: &super::registry::ResourceType,
        wanted: Value,
    ) -> ApiResult<()> {
        let name = wanted["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        match self.read_opt(rt, None, &name).await? {
            None => self.ensure(rt, wanted).await,
            Some((mut current, revision)) => {
                let autoupdate = current["metadata"]["annotations"]["rbac.authorization.kubernetes.io/autoupdate"].as_str() != Some("false");
                if autoupdate
                    && (current["rules"] != wanted["rules"]
                        || current["aggregationRule"] != wanted["aggregationRule"])
                {
                    current["rules"] = wanted["rules"].clone();
                    current["aggregationRule"] = wanted["aggregationRule"].clone();
                    if let Some(o) = current.as_object_mut() {
                        o.retain(|_, v| !v.is_null());
                    }
                    match self.store_update(rt, None, current, revision).await {
                        Ok(_) => {}
                        Err(e) if e.code == 409 => {}
                        Err(e) => return Err(e),
                    }
                }
                Ok(())
            }
        }
    }

    /// The `default/kubernetes` Service (first service IP) and this server's address in its endpoints.
    async fn ensure_kubernetes_service(&self) -> ApiResult<()> {
        let cidr = self.opts.service_cidrs[0];
        let first = cidr
            .hosts()
            .next()
            .map(|ip| ip.to_string())
            .unwrap_or_default();
        let port = self.opts.bind.port();
        let services = self.rt("", "services")?;
        self.ensure(
            &services,
            json!({
                "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"component": "apiserver", "provider": "kubernetes"}},
                "spec": {
                    "type": "ClusterIP", "clusterIP": first, "clusterIPs": [first], "sessionAffinity": "None",
                    "ipFamilies": [if cidr.addr().is_ipv4() { "IPv4" } else { "IPv6" }], "ipFamilyPolicy": "SingleStack",
                    "internalTrafficPolicy": "Cluster",
                    "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}],
                },
                "status": {"loadBalancer": {}},
            }),
        )
        .await?;
        let endpoints = self.rt("", "endpoints")?;
        let me = self.opts.advertise_address.to_string();
        for _ in 0..5 {
            match self
                .read_opt(&endpoints, Some("default"), "kubernetes")
                .await?
            {
                None => {
                    let created = self
                        .insert(
                            &endpoints,
                            Some("default"),
                            json!({
                                "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
                                "subsets": [{"addresses": [{"ip": me}], "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}],
                            }),
                        )
                        .await;
                    match created {
                        Err(e) if e.code == 409 => continue,
                        other => return other.map(|_| ()),
                    }
                }
                Some((mut current, revision)) => {
                    let addresses = current["subsets"][0]["addresses"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default();
                    if addresses.iter().any(|a| a["ip"] == me) {
                        return Ok(());
                    }
                    let mut addresses = addresses;
                    addresses.push(json!({"ip": me}));
                    current["subsets"] = json!([{"addresses": addresses, "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}]);
                    match self
                        .store_update(&endpoints, Some("default"), current, revision)
                        .await
                    {
                        Err(e) if e.code == 409 => continue,
                        other => return other.map(|_| ()),
                    }
                }
            }
        }
        Ok(())
    }

    /// The `default/kubernetes` EndpointSlice the real server's endpoint reconciler keeps beside the
    /// Endpoints: the same API server addresses, so proxies route the `kubernetes` Service.
    async fn ensure_kubernetes_slice(&self) -> ApiResult<()> {
        let endpoints = self.rt("", "endpoints")?;
        let slices = self
            .registry_type("discovery.k8s.io", "v1", "endpointslices")
            .ok_or_else(|| ApiError::internal("endpointslices type missing"))?;
        let Some((current, _)) = self
            .read_opt(&endpoints, Some("default"), "kubernetes")
            .await?
        else {
            return Ok(());
        };
        let subset = &current["subsets"][0];
        let addresses: Vec<Value> = subset["addresses"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| a["ip"].as_str())
            .map(|ip| json!({"addresses": [ip], "conditions": {"ready": true}}))
            .collect();
        let family = if self.opts.advertise_address.is_ipv4() {
            "IPv4"
        } else {
            "IPv6"
        };
        let wanted = json!({
            "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"kubernetes.io/service-name": "kubernetes"}},
            "addressType": family,
            "endpoints": addresses,
            "ports": subset["ports"].clone(),
        });
        for _ in 0..5 {
            match self
                .read_opt(&slices, Some("default"), "kubernetes")
                .await?
            {
                None => match self.insert(&slices, Some("default"), wanted.clone()).await {
                    Err(e) if e.code == 409 => continue,
                    other => return other.map(|_| ()),
                },
                Some((mut slice, revision)) => {
                    if slice["endpoints"] == wanted["endpoints"]
                        && slice["ports"] == wanted["ports"]
                    {
                        return Ok(());
                    }
                    slice["endpoints"] = wanted["endpoints"].clone();
                    slice["ports"] = wanted["ports"].clone();
                    slice["addressType"] = wanted["addressType"].clone();
                    match self
                        .store_update(&slices, Some("default"), slice, revision)
                        .await
                    {
                        Err(e) if e.code == 409 => continue,
                        other => return other.map(|_| ()),
                    }
                }
            }
        }
        Ok(())
    }

    /// kube-system/extension-apiserver-authentication: the client CAs and request-header settings
    /// that delegating components (controller-manager, scheduler) read.
    async fn publish_authentication_config(&self) -> ApiResult<()> {
        let pem = |certs: &[rustls_pki_types::CertificateDer<'static>]| {
            certs
                .iter()
                .map(|c| pem::encode(&pem::Pem::new("CERTIFICATE", c.to_vec())))
                .collect::<String>()
        };
        let mut data = json!({});
        if !self.client_cas.is_empty() {
            data["client-ca-file"] = json!(pem(&self.client_cas));
        }
        if let Some(rh) = &self.opts.request_header {
            data["requestheader-client-ca-file"] = json!(pem(&self.front_proxy_cas));
            data["requestheader-allowed-names"] =
                json!(serde_json::to_string(&rh.allowed_names).unwrap_or_default());
            data["requestheader-username-headers"] =
                json!(serde_json::to_string(&rh.username_headers).unwrap_or_default());
            data["requestheader-group-headers"] =
                json!(serde_json::to_string(&rh.group_headers).unwrap_or_default());
            data["requestheader-extra-headers-prefix"] =
                json!(serde_json::to_string(&rh.extra_prefixes).unwrap_or_default());
        }
        let configmaps = self.rt("", "configmaps")?;
        let wanted = json!({"metadata": {"name": "extension-apiserver-authentication", "namespace": "kube-system"}, "data": data});
        match self
            .read_opt(
                &configmaps,
                Some("kube-system"),
                "extension-apiserver-authentication",
            )
            .await?
        {
            None => self.ensure(&configmaps, wanted).await,
            Some((mut current, revision)) if current["data"] != wanted["data"] => {
                current["data"] = wanted["data"].clone();
                self.store_update(&configmaps, Some("kube-system"), current, revision)
                    .await
                    .map(|_| ())
            }
            Some(_) => Ok(()),
        }
    }

    /// Renews `kube-system/apiserver-<id>`, the identity lease every API server keeps.
    pub async fn renew_identity_lease(&self, hostname: &str) -> ApiResult<()> {
        let leases = self.rt("coordination.k8s.io", "leases")?;
        let id = base64::engine::general_purpose::STANDARD_NO_PAD
            .encode(Sha256::digest(format!(
                "{hostname}_{}",
                self.opts.advertise_address
            )))
            .to_lowercase()
            .replace(['+', '/'], "");
        let name = format!("apiserver-{}", &id[..26.min(id.len())]);
        let holder = format!("{name}_{hostname}");
        let now = time::now_micro();
        match self.read_opt(&leases, Some("kube-system"), &name).await? {
            None => self
                .ensure(
                    &leases,
                    json!({
                        "metadata": {"name": name, "namespace": "kube-system", "labels": {"apiserver.kubernetes.io/identity": "kube-apiserver", "kubernetes.io/hostname": hostname}},
                        "spec": {"holderIdentity": holder, "leaseDurationSeconds": 3600, "renewTime": now},
                    }),
                )
                .await,
            Some((mut lease, revision)) => {
                lease["spec"]["renewTime"] = json!(now);
                self.store_update(&leases, Some("kube-system"), lease, revision).await.map(|_| ())
            }
        }
    }

    /// Deletes everything in a namespace (the namespace controller's work, done synchronously).
    pub async fn delete_namespace_content(&self, namespace: &str) -> ApiResult<()> {
        let types: Vec<super::registry::ResourceType> = self
            .types()
            .into_iter()
            .filter(|t| t.namespaced && !t.virtual_create_only)
            .collect();
        let mut seen = Vec::new();
        for rt in types {
            if seen.contains(&rt.storage) {
                continue;
            }
            seen.push(rt.storage.clone());
            let (items, _) = self.list(&rt, Some(namespace)).await?;
            for item in items {
                let name = item["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                let revision = item["metadata"]["resourceVersion"]
                    .as_str()
                    .and_then(|r| r.parse().ok())
                    .unwrap_or(0);
                match self.remove(&rt, Some(namespace), &name, revision).await {
                    Ok(()) => {}
                    Err(e) if e.code == 409 => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }
}

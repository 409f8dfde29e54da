//! What happens to an object on create, update and delete, per kind: defaults, validation and the
//! admission plugins a kubeadm cluster enables (NamespaceLifecycle, NodeRestriction, Priority,
//! CertificateApproval/Signing/SubjectRestriction, service IP allocation).

use std::net::IpAddr;

use base64::Engine;
use serde_json::{Value, json};

use super::Server;
use super::authn::UserInfo;
use super::authz;
use super::rbac::Attributes;
use super::registry::ResourceType;
use super::status::{ApiError, ApiResult};
use super::validation::{self, Causes};
use super::workloads;
use crate::common::time;

/// The context of one write.
pub struct Write<'a> {
    pub server: &'a Server,
    pub user: &'a UserInfo,
    pub rt: &'a ResourceType,
    pub namespace: Option<&'a str>,
}

const SYSTEM_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public", "kube-node-lease"];

fn name_of(obj: &Value) -> String {
    obj["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn fail(kind: &str, name: &str, causes: Causes) -> ApiResult<()> {
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(kind, name, &causes))
    }
}

impl Write<'_> {
    fn node_user(&self) -> Option<&str> {
        if self.server.opts.admission_enabled("NodeRestriction") {
            self.user.node_name()
        } else {
            None
        }
    }

    fn is_node_identity(&self) -> bool {
        self.server.opts.admission_enabled("NodeRestriction")
            && self.user.groups.iter().any(|g| g == "system:nodes")
    }

    /// Defaults, admission and validation of a new object (metadata already set).
    pub async fn create(&self, obj: &mut Value) -> ApiResult<()> {
        let name = name_of(obj);
        let kind = self.rt.kind.clone();
        if let Some(ns) = self.namespace
            && self.server.opts.admission_enabled("NamespaceLifecycle")
            && kind != "Namespace"
        {
            self.namespace_accepts_creates(ns).await?;
        }
        let mut causes = Causes::new();
        validation::name(
            validation::name_rule(&kind, self.rt.is_custom()),
            &name,
            &mut causes,
        );
        validation::metadata(&obj["metadata"], &mut causes);
        match (self.rt.group.as_str(), kind.as_str()) {
            ("", "Namespace") => {
                obj["spec"]["finalizers"] = json!(["kubernetes"]);
                obj["status"] = json!({"phase": "Active"});
            }
            ("", "Pod") => self.create_pod(obj, &mut causes).await?,
            ("", "Node") => {
                self.admit_node(None, obj)?;
                validate_pod_cidrs(None, obj, &mut causes);
            }
            ("", "Secret") => {
                merge_string_data(obj);
                if obj["type"].as_str().is_none_or(str::is_empty) {
                    obj["type"] = json!("Opaque");
                }
                validation::data_map(obj, "data", true, &mut causes);
            }
            ("", "ConfigMap") => {
                validation::data_map(obj, "data", false, &mut causes);
                validation::data_map(obj, "binaryData", true, &mut causes);
            }
            ("", "Service") => self.create_service(obj, &mut causes).await?,
            ("certificates.k8s.io", "CertificateSigningRequest") => {
                self.create_csr(obj, &mut causes)?
            }
            ("rbac.authorization.k8s.io", "Role") => validation::rbac_rules(obj, true, &mut causes),
            ("rbac.authorization.k8s.io", "ClusterRole") => {
                validation::rbac_rules(obj, false, &mut causes)
            }
            ("rbac.authorization.k8s.io", "RoleBinding") => {
                validation::rbac_binding(obj, false, &mut causes)
            }
            ("rbac.authorization.k8s.io", "ClusterRoleBinding") => {
                validation::rbac_binding(obj, true, &mut causes)
            }
            ("apiextensions.k8s.io", "CustomResourceDefinition") => create_crd(obj, &mut causes),
            ("coordination.k8s.io", "Lease") => {
                if let Some(node) = self.node_user()
                    && self.namespace == Some("kube-node-lease")
                    && name != node
                {
                    return Err(ApiError::forbidden(format!(
                        "node {node:?} is not allowed to modify lease {name:?}: can only access node lease with the same name as the requesting node"
                    )));
                }
            }
            ("apps", "Deployment" | "DaemonSet" | "ReplicaSet") => {
                obj.as_object_mut().map(|o| o.remove("status"));
                workloads::apply_defaults(&kind, obj);
                workloads::validate(&kind, obj, &mut causes);
                if kind == "DaemonSet" {
                    workloads::daemonset_template_generation(None, obj);
                }
            }
            ("apps", "StatefulSet") | ("batch", "Job") => {
                obj.as_object_mut().map(|o| o.remove("status"));
            }
            _ => {}
        }
        if obj.get("spec").is_some() && (self.rt.has_status() || self.rt.is_custom()) {
            obj["metadata"]["generation"] = json!(1);
        }
        fail(&kind, &name, causes)
    }

    /// Admission and validation of a replacement; `sub` is the subresource being written.
    pub async fn update(&self, old: &Value, new: &mut Value, sub: &str) -> ApiResult<()> {
        let name = name_of(old);
        let kind = self.rt.kind.clone();
        let mut causes = Causes::new();
        validation::metadata(&new["metadata"], &mut causes);
        match (self.rt.group.as_str(), kind.as_str(), sub) {
            ("", "Pod", "") => {
                self.admit_pod_write(old)?;
                let spec_changed = strip_mutable_pod_fields(&old["spec"])
                    != strip_mutable_pod_fields(&new["spec"]);
                if spec_changed {
                    causes.push((
                        "spec".into(),
                        "Forbidden: pod updates may not change fields other than `spec.containers[*].image`, `spec.initContainers[*].image`, `spec.activeDeadlineSeconds`, `spec.tolerations` (only additions to existing tolerations) or `spec.terminationGracePeriodSeconds`".into(),
                    ));
                }
            }
            ("", "Pod", "status") => self.admit_pod_write(old)?,
            ("", "Node", _) => {
                self.admit_node(Some(old), new)?;
                validate_pod_cidrs(Some(old), new, &mut causes);
            }
            ("apps", "Deployment" | "DaemonSet" | "ReplicaSet", "") => {
                workloads::validate(&kind, new, &mut causes);
                workloads::validate_update(old, new, &mut causes);
                if kind == "DaemonSet" {
                    workloads::daemonset_template_generation(Some(old), new);
                }
            }
            ("", "Secret", "") => {
                merge_string_data(new);
                if new["type"].as_str().is_none_or(str::is_empty) {
                    new["type"] = old["type"].clone();
                }
                if new["type"] != old["type"] {
                    causes.push(("type".into(), "Invalid value: field is immutable".into()));
                }
                validation::data_map(new, "data", true, &mut causes);
            }
            ("", "ConfigMap", "") => validation::data_map(new, "data", false, &mut causes),
            ("", "Service", "") => self.update_service(old, new, &mut causes),
            ("certificates.k8s.io", "CertificateSigningRequest", s) => {
                self.update_csr(old, new, s).await?
            }
            ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding", "") => {
                if new["roleRef"] != old["roleRef"] {
                    causes.push((
                        "roleRef".into(),
                        "Invalid value: cannot change roleRef".into(),
                    ));
                }
                validation::rbac_binding(new, kind == "ClusterRoleBinding", &mut causes);
            }
            ("rbac.authorization.k8s.io", "Role", "") => {
                validation::rbac_rules(new, true, &mut causes)
            }
            ("rbac.authorization.k8s.io", "ClusterRole", "") => {
                validation::rbac_rules(new, false, &mut causes)
            }
            ("coordination.k8s.io", "Lease", "") => {
                if let Some(node) = self.node_user()
                    && self.namespace == Some("kube-node-lease")
                    && name != node
                {
                    return Err(ApiError::forbidden(format!(
                        "node {node:?} is not allowed to modify lease {name:?}"
                    )));
                }
            }
            _ => {}
        }
        fail(&kind, &name, causes)
    }

    /// Admission of a delete.
    pub async fn delete(&self, obj: &Value) -> ApiResult<()> {
        let name = name_of(obj);
        match (self.rt.group.as_str(), self.rt.kind.as_str()) {
            ("", "Namespace") if SYSTEM_NAMESPACES.contains(&name.as_str()) => {
                Err(ApiError::forbidden(format!(
                    "namespaces {name:?} is forbidden: this namespace may not be deleted"
                )))
            }
            ("", "Pod") => self.admit_pod_write(obj),
            ("", "Node") => match self.node_user() {
                Some(node) if node != name => Err(ApiError::forbidden(format!(
                    "node {node:?} is not allowed to modify node {name:?}"
                ))),
                _ => Ok(()),
            },
            _ => Ok(()),
        }
    }

    async fn namespace_accepts_creates(&self, ns: &str) -> ApiResult<()> {
        let namespaces = self
            .server
            .registry_type("", "v1", "namespaces")
            .ok_or_else(|| ApiError::internal("namespaces type missing"))?;
        match self
            .server
            .etcd
            .get(&namespaces.key(&self.server.opts.etcd_prefix, None, ns))
            .await?
        {
            None => Err(ApiError::not_found(&namespaces, ns)),
            Some(s) if s.object["status"]["phase"].as_str() == Some("Terminating") => {
                Err(ApiError::forbidden(format!(
                    "unable to create new content in namespace {ns} because it is being terminated"
                )))
            }
            Some(_) => Ok(()),
        }
    }

    async fn create_pod(&self, pod: &mut Value, causes: &mut Causes) -> ApiResult<()> {
        let name = name_of(pod);
        if let Some(node) = self.node_user() {
            if pod["metadata"]["annotations"]["kubernetes.io/config.mirror"].is_null() {
                return Err(ApiError::forbidden(format!(
                    "pod does not have \"kubernetes.io/config.mirror\" annotation, node {node:?} can only create mirror pods"
                )));
            }
            if pod["spec"]["nodeName"].as_str() != Some(node) {
                return Err(ApiError::forbidden(format!(
                    "node {node:?} can only create pods with spec.nodeName set to itself"
                )));
            }
            if pod["spec"]["serviceAccountName"]
                .as_str()
                .is_some_and(|s| !s.is_empty())
            {
                return Err(ApiError::forbidden(format!(
                    "node {node:?} can not create pods that reference a service account"
                )));
            }
        } else if self.is_node_identity() {
            return Err(ApiError::forbidden("unexpected node identity"));
        }
        let spec = &mut pod["spec"];
        if spec["containers"].as_array().is_none_or(|c| c.is_empty()) {
            causes.push(("spec.containers".into(), "Required value".into()));
        }
        let mut seen = Vec::new();
        for (i, c) in spec["containers"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            let cname = c["name"].as_str().unwrap_or_default();
            if !validation::is_dns_label(cname) {
                causes.push((
                    format!("spec.containers[{i}].name"),
                    format!("Invalid value: {cname:?}: must be a DNS label"),
                ));
            }
            if seen.contains(&cname) {
                causes.push((
                    format!("spec.containers[{i}].name"),
                    format!("Duplicate value: {cname:?}"),
                ));
            }
            seen.push(cname);
            if c["image"].as_str().is_none_or(str::is_empty) {
                causes.push((
                    format!("spec.containers[{i}].image"),
                    "Required value".into(),
                ));
            }
        }
        workloads::default_pod_spec(spec);
        if spec["enableServiceLinks"].is_null() {
            spec["enableServiceLinks"] = json!(true);
        }
        if self.server.opts.admission_enabled("Priority") {
            self.admit_priority(pod, &name).await?;
        }
        let mirror = !pod["metadata"]["annotations"]["kubernetes.io/config.mirror"].is_null();
        if self.server.opts.admission_enabled("ServiceAccount") && !mirror {
            admit_service_account(pod);
        }
        pod["status"] = json!({"phase": "Pending", "qosClass": qos_class(&pod["spec"])});
        Ok(())
    }

    async fn admit_priority(&self, pod: &mut Value, name: &str) -> ApiResult<()> {
        let class = pod["spec"]["priorityClassName"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let computed = if class.is_empty() {
            0
        } else {
            let pcs = self
                .server
                .registry_type("scheduling.k8s.io", "v1", "priorityclasses")
                .ok_or_else(|| ApiError::internal("priorityclasses type missing"))?;
            let stored = self
                .server
                .etcd
                .get(&pcs.key(&self.server.opts.etcd_prefix, None, &class))
                .await?;
            match stored {
                Some(s) => s.object["value"].as_i64().unwrap_or(0),
                None => {
                    return Err(ApiError::forbidden(format!(
                        "pods {name:?} is forbidden: no PriorityClass with name {class} was found"
                    )));
                }
            }
        };
        if let Some(given) = pod["spec"]["priority"].as_i64()
            && given != computed
        {
            return Err(ApiError::forbidden(format!(
                "pods {name:?} is forbidden: the integer value of priority ({given}) must not be provided in pod spec; priority admission controller computed {computed} from the given PriorityClass name"
            )));
        }
        pod["spec"]["priority"] = json!(computed);
        Ok(())
    }

    fn admit_pod_write(&self, pod: &Value) -> ApiResult<()> {
        if let Some(node) = self.node_user()
            && pod["spec"]["nodeName"].as_str() != Some(node)
        {
            return Err(ApiError::forbidden(format!(
                "node {node:?} can only update or delete pods with spec.nodeName set to itself"
            )));
        }
        Ok(())
    }

    /// NodeRestriction for nodes: only its own Node, no taint changes after registration, no
    /// labels outside the kubelet's allowed set.
    fn admit_node(&self, old: Option<&Value>, new: &Value) -> ApiResult<()> {
        let Some(node) = self.node_user() else {
            return Ok(());
        };
        let name = name_of(old.unwrap_or(new));
        if name != node {
            return Err(ApiError::forbidden(format!(
                "node {node:?} is not allowed to modify node {name:?}"
            )));
        }
        if let Some(old) = old
            && old["spec"]["taints"] != new["spec"]["taints"]
        {
            return Err(ApiError::forbidden(format!(
                "node {node:?} is not allowed to modify taints"
            )));
        }
        let old_labels = old
            .map(|o| o["metadata"]["labels"].clone())
            .unwrap_or(Value::Null);
        let forbidden: Vec<String> = new["metadata"]["labels"]
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(k, v)| old_labels[k.as_str()] != **v && !kubelet_may_set_label(k))
            .map(|(k, _)| k.clone())
            .collect();
        if !forbidden.is_empty() {
            return Err(ApiError::forbidden(format!(
                "node {node:?} is not allowed to set the following labels: {}",
                forbidden.join(", ")
            )));
        }
        Ok(())
    }

    async fn create_service(&self, svc: &mut Value, causes: &mut Causes) -> ApiResult<()> {
        let spec = &mut svc["spec"];
        if spec["type"].as_str().is_none_or(str::is_empty) {
            spec["type"] = json!("ClusterIP");
        }
        if spec["sessionAffinity"].is_null() {
            spec["sessionAffinity"] = json!("None");
        }
        let svc_type = spec["type"].as_str().unwrap_or("ClusterIP").to_string();
        for port in spec["ports"].as_array_mut().into_iter().flatten() {
            if port["protocol"].is_null() {
                port["protocol"] = json!("TCP");
            }
            if port["targetPort"].is_null() {
                port["targetPort"] = port["port"].clone();
            }
        }
        if svc_type == "ExternalName" {
            return Ok(());
        }
        if spec["ports"].as_array().is_none_or(|p| p.is_empty())
            && spec["clusterIP"].as_str() != Some("None")
        {
            causes.push(("spec.ports".into(), "Required value".into()));
        }
        let requested = spec["clusterIP"].as_str().unwrap_or_default().to_string();
        let cidr = self.server.opts.service_cidrs[0];
        let ip = if requested == "None" {
            "None".to_string()
        } else {
            let used = self.used_cluster_ips().await?;
            if requested.is_empty() {
                allocate_ip(&cidr, &used).ok_or_else(|| {
                    ApiError::internal("failed to allocate a serviceIP: range is full")
                })?
            } else {
                let ip: IpAddr = requested.parse().map_err(|_| {
                    ApiError::invalid(
                        "Service",
                        &name_of(svc),
                        &[(
                            "spec.clusterIPs".into(),
                            format!("Invalid value: [{requested:?}]: must be a valid IP address"),
                        )],
                    )
                })?;
                if !cidr.contains(&ip) || ip == cidr.network() || ip == cidr.broadcast() {
                    causes.push((
                        "spec.clusterIPs".into(),
                        format!("Invalid value: []string{{{requested:?}}}: failed to allocate IP {requested}: provided IP is not in the valid range. The range of valid IPs is {cidr}"),
                    ));
                } else if used.contains(&ip) {
                    causes.push((
                        "spec.clusterIPs".into(),
                        format!("Invalid value: []string{{{requested:?}}}: failed to allocate IP {requested}: provided IP is already allocated"),
                    ));
                }
                requested
            }
        };
        let spec = &mut svc["spec"];
        spec["clusterIP"] = json!(ip);
        spec["clusterIPs"] = json!([ip]);
        spec["ipFamilies"] = json!([if cidr.addr().is_ipv4() {
            "IPv4"
        } else {
            "IPv6"
        }]);
        if spec["ipFamilyPolicy"].is_null() {
            spec["ipFamilyPolicy"] = json!("SingleStack");
        }
        if spec["internalTrafficPolicy"].is_null() {
            spec["internalTrafficPolicy"] = json!("Cluster");
        }
        if svc_type == "NodePort" || svc_type == "LoadBalancer" {
            let (low, high) = self.server.opts.node_port_range;
            let mut next = low;
            for port in spec["ports"].as_array_mut().into_iter().flatten() {
                match port["nodePort"].as_u64() {
                    Some(p) if p < u64::from(low) || p > u64::from(high) => causes.push((
                        "spec.ports[].nodePort".into(),
                        format!("Invalid value: {p}: provided port is not in the valid range. The range of valid ports is {low}-{high}"),
                    )),
                    Some(_) => {}
                    None => {
                        port["nodePort"] = json!(next);
                        next = next.saturating_add(1);
                    }
                }
            }
        }
        svc["status"] = json!({"loadBalancer": {}});
        Ok(())
    }

    async fn used_cluster_ips(&self) -> ApiResult<Vec<IpAddr>> {
        let services = self
            .server
            .registry_type("", "v1", "services")
            .ok_or_else(|| ApiError::internal("services type missing"))?;
        let (items, _) = self
            .server
            .etcd
            .list(&services.list_prefix(&self.server.opts.etcd_prefix, None))
            .await?;
        Ok(items
            .iter()
            .filter_map(|s| {
                s.object["spec"]["clusterIP"]
                    .as_str()
                    .and_then(|ip| ip.parse().ok())
            })
            .collect())
    }

    fn update_service(&self, old: &Value, new: &mut Value, causes: &mut Causes) {
        for field in ["clusterIP", "clusterIPs", "ipFamilies"] {
            let given = &new["spec"][field];
            if given.is_null() || given.as_str() == Some("") {
                new["spec"][field] = old["spec"][field].clone();
            } else if *given != old["spec"][field] && new["spec"]["type"] == old["spec"]["type"] {
                causes.push((
                    format!("spec.{field}"),
                    "Invalid value: field is immutable".into(),
                ));
            }
        }
    }

    fn create_csr(&self, csr: &mut Value, causes: &mut Causes) -> ApiResult<()> {
        csr["spec"]["username"] = json!(self.user.name);
        csr["spec"]["groups"] = json!(self.user.groups);
        if !self.user.uid.is_empty() {
            csr["spec"]["uid"] = json!(self.user.uid);
        } else {
            csr["spec"].as_object_mut().map(|s| s.remove("uid"));
        }
        if !self.user.extra.is_empty() {
            csr["spec"]["extra"] = json!(self.user.extra);
        }
        csr["status"] = json!({});
        validation::csr_spec(&csr["spec"], causes);
        if self
            .server
            .opts
            .admission_enabled("CertificateSubjectRestriction")
            && csr["spec"]["signerName"].as_str() == Some("kubernetes.io/kube-apiserver-client")
            && csr_organizations(csr).iter().any(|o| o == "system:masters")
        {
            return Err(ApiError::forbidden(format!(
                "certificatesigningrequests.certificates.k8s.io {:?} is forbidden: use of kubernetes.io/kube-apiserver-client signer with system:masters group is not allowed",
                name_of(csr)
            )));
        }
        Ok(())
    }

    async fn update_csr(&self, old: &Value, new: &mut Value, sub: &str) -> ApiResult<()> {
        let signer = old["spec"]["signerName"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let is_approval =
            |c: &Value| matches!(c["type"].as_str(), Some("Approved") | Some("Denied"));
        let conditions = |v: &Value| {
            v["status"]["conditions"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        };
        new["spec"] = old["spec"].clone();
        match sub {
            "approval" => {
                let mut merged: Vec<Value> = conditions(old)
                    .into_iter()
                    .filter(|c| !is_approval(c))
                    .collect();
                let mut approval: Vec<Value> =
                    conditions(new).into_iter().filter(is_approval).collect();
                let approved = approval.iter().any(|c| c["type"] == "Approved");
                let denied = approval.iter().any(|c| c["type"] == "Denied");
                if approved && denied {
                    return Err(ApiError::invalid(
                        "CertificateSigningRequest",
                        &name_of(old),
                        &[(
                            "status.conditions".into(),
                            "Invalid value: Approved and Denied conditions are mutually exclusive"
                                .into(),
                        )],
                    ));
                }
                let changed = approval.iter().map(|c| &c["type"]).collect::<Vec<_>>()
                    != conditions(old)
                        .iter()
                        .filter(|c| is_approval(c))
                        .map(|c| &c["type"])
                        .collect::<Vec<_>>();
                if changed && self.server.opts.admission_enabled("CertificateApproval") {
                    self.check_signer_permission("approve", &signer).await?;
                }
                for c in &mut approval {
                    if c["status"].is_null() {
                        c["status"] = json!("True");
                    }
                    if c["lastUpdateTime"].is_null() {
                        c["lastUpdateTime"] = json!(time::now());
                    }
                    if c["lastTransitionTime"].is_null() {
                        c["lastTransitionTime"] = json!(time::now());
                    }
                }
                merged.extend(approval);
                let certificate = old["status"]["certificate"].clone();
                new["status"] = json!({"conditions": merged});
                if !certificate.is_null() {
                    new["status"]["certificate"] = certificate;
                }
            }
            "status" => {
                let approvals: Vec<Value> =
                    conditions(old).into_iter().filter(is_approval).collect();
                let mut others: Vec<Value> = conditions(new)
                    .into_iter()
                    .filter(|c| !is_approval(c))
                    .collect();
                others.extend(approvals.clone());
                new["status"]["conditions"] = json!(others);
                if new["status"]["certificate"] != old["status"]["certificate"] {
                    if !approvals.iter().any(|c| c["type"] == "Approved") {
                        return Err(ApiError::invalid(
                            "CertificateSigningRequest",
                            &name_of(old),
                            &[(
                                "status.certificate".into(),
                                "Forbidden: certificate can only be set on an approved request"
                                    .into(),
                            )],
                        ));
                    }
                    if self.server.opts.admission_enabled("CertificateSigning") {
                        self.check_signer_permission("sign", &signer).await?;
                    }
                    let pem_ok = new["status"]["certificate"]
                        .as_str()
                        .and_then(|c| base64::engine::general_purpose::STANDARD.decode(c).ok())
                        .is_some_and(|bytes| crate::common::tls::certs_from_pem(&bytes).is_ok());
                    if !pem_ok {
                        return Err(ApiError::invalid(
                            "CertificateSigningRequest",
                            &name_of(old),
                            &[("status.certificate".into(), "Invalid value: \"<certificate data>\": must contain at least one CERTIFICATE PEM block".into())],
                        ));
                    }
                }
            }
            _ => new["status"] = old["status"].clone(),
        }
        Ok(())
    }

    /// CertificateApproval / CertificateSigning: the `approve`/`sign` verb on the signer.
    async fn check_signer_permission(&self, verb: &str, signer: &str) -> ApiResult<()> {
        let domain_wildcard = signer
            .split_once('/')
            .map(|(d, _)| format!("{d}/*"))
            .unwrap_or_default();
        for name in [signer, domain_wildcard.as_str()] {
            let attrs = Attributes::resource(verb, "certificates.k8s.io", "signers", "", "", name);
            if authz::allowed(self.server, self.user, &attrs).await? {
                return Ok(());
            }
        }
        Err(ApiError::forbidden(format!(
            "user not permitted to {verb} requests with signerName {signer:?}"
        )))
    }
}

/// spec.podCIDR/podCIDRs of a Node: podCIDRs wins and podCIDR is its first entry (the v1
/// conversion), every entry a CIDR, at most one per family, and once set they never change
/// (ValidateNode / ValidateNodeUpdate).
fn validate_pod_cidrs(old: Option<&Value>, node: &mut Value, causes: &mut Causes) {
    let spec = &mut node["spec"];
    let listed = spec["podCIDRs"].as_array().is_some_and(|l| !l.is_empty());
    if !listed {
        if let Some(single) = spec["podCIDR"].as_str().filter(|c| !c.is_empty()) {
            spec["podCIDRs"] = json!([single]);
        }
    } else {
        spec["podCIDR"] = spec["podCIDRs"][0].clone();
    }
    let cidrs: Vec<String> = spec["podCIDRs"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| c.as_str().unwrap_or_default().to_string())
        .collect();
    let mut families = Vec::new();
    for (i, cidr) in cidrs.iter().enumerate() {
        match cidr.parse::<ipnet::IpNet>() {
            Ok(net) => families.push(net.addr().is_ipv4()),
            Err(_) => causes.push((
                format!("spec.podCIDRs[{i}]"),
                format!("Invalid value: {cidr:?}: must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"),
            )),
        }
    }
    if cidrs.len() > 1 {
        let dual = families.contains(&true) && families.contains(&false);
        if !dual || cidrs.len() > 2 {
            causes.push((
                "spec.podCIDRs".into(),
                format!(
                    "Invalid value: []string{{{}}}: may specify no more than one CIDR for each IP family",
                    cidrs.iter().map(|c| format!("{c:?}")).collect::<Vec<_>>().join(", ")
                ),
            ));
        }
    }
    if let Some(old) = old {
        let before = &old["spec"]["podCIDRs"];
        if before.as_array().is_some_and(|l| !l.is_empty()) && *before != node["spec"]["podCIDRs"] {
            causes.push((
                "spec.podCIDRs".into(),
                "Forbidden: node updates may not change podCIDR except from \"\" to valid".into(),
            ));
        }
    }
}

/// Labels a kubelet may set on its own Node under NodeRestriction.
pub fn kubelet_may_set_label(key: &str) -> bool {
    const ALLOWED: &[&str] = &[
        "kubernetes.io/hostname",
        "kubernetes.io/arch",
        "kubernetes.io/os",
        "beta.kubernetes.io/arch",
        "beta.kubernetes.io/os",
        "beta.kubernetes.io/instance-type",
        "node.kubernetes.io/instance-type",
        "failure-domain.beta.kubernetes.io/region",
        "failure-domain.beta.kubernetes.io/zone",
        "topology.kubernetes.io/region",
        "topology.kubernetes.io/zone",
    ];
    let Some((prefix, _)) = key.split_once('/') else {
        return true;
    };
    if prefix == "node-restriction.kubernetes.io"
        || prefix.ends_with(".node-restriction.kubernetes.io")
    {
        return false;
    }
    let kubernetes_namespace = ["kubernetes.io", "k8s.io"]
        .iter()
        .any(|d| prefix == *d || prefix.ends_with(&format!(".{d}")));
    if !kubernetes_namespace {
        return true;
    }
    ALLOWED.contains(&key)
        || prefix == "kubelet.kubernetes.io"
        || prefix.ends_with(".kubelet.kubernetes.io")
        || prefix == "node.kubernetes.io"
        || prefix.ends_with(".node.kubernetes.io")
}

/// The spec fields of a pod that updates may change, cleared for comparison.
fn strip_mutable_pod_fields(spec: &Value) -> Value {
    let mut s = spec.clone();
    for list in ["containers", "initContainers"] {
        for c in s[list].as_array_mut().into_iter().flatten() {
            c.as_object_mut().map(|o| o.remove("image"));
        }
    }
    if let Some(o) = s.as_object_mut() {
        for field in [
            "activeDeadlineSeconds",
            "tolerations",
            "terminationGracePeriodSeconds",
        ] {
            o.remove(field);
        }
    }
    s
}

fn qos_class(spec: &Value) -> &'static str {
    let containers = spec["containers"].as_array().cloned().unwrap_or_default();
    let has = |c: &Value, what: &str| {
        c["resources"][what]
            .as_object()
            .is_some_and(|m| !m.is_empty())
    };
    if containers
        .iter()
        .all(|c| !has(c, "requests") && !has(c, "limits"))
    {
        "BestEffort"
    } else if containers.iter().all(|c| {
        ["cpu", "memory"].iter().all(|r| {
            !c["resources"]["limits"][r].is_null()
                && (c["resources"]["requests"][r].is_null()
                    || c["resources"]["requests"][r] == c["resources"]["limits"][r])
        })
    }) {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

fn merge_string_data(secret: &mut Value) {
    let Some(string_data) = secret.get("stringData").and_then(Value::as_object).cloned() else {
        return;
    };
    for (k, v) in string_data {
        secret["data"][k.as_str()] =
            json!(base64::engine::general_purpose::STANDARD.encode(v.as_str().unwrap_or_default()));
    }
    secret.as_object_mut().map(|o| o.remove("stringData"));
}

fn create_crd(crd: &mut Value, causes: &mut Causes) {
    let plural = crd["spec"]["names"]["plural"].as_str().unwrap_or_default();
    let group = crd["spec"]["group"].as_str().unwrap_or_default();
    let expected = format!("{plural}.{group}");
    if crd["metadata"]["name"].as_str() != Some(expected.as_str()) {
        causes.push((
            "metadata.name".into(),
            format!("Invalid value: must be spec.names.plural+\".\"+spec.group ({expected:?})"),
        ));
    }
    let storage: Vec<Value> = crd["spec"]["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["storage"].as_bool() == Some(true))
        .map(|v| v["name"].clone())
        .collect();
    if storage.len() != 1 {
        causes.push((
            "spec.versions".into(),
            "Invalid value: must have exactly one version marked as storage version".into(),
        ));
    }
    let now = time::now();
    crd["status"] = json!({
        "acceptedNames": crd["spec"]["names"].clone(),
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": now},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": now},
        ],
        "storedVersions": storage,
    });
}

/// The O values of a CSR's subject.
fn csr_organizations(csr: &Value) -> Vec<String> {
    let Some(der) = csr["spec"]["request"]
        .as_str()
        .and_then(|r| base64::engine::general_purpose::STANDARD.decode(r).ok())
        .and_then(|pem_bytes| pem::parse(pem_bytes).ok())
    else {
        return Vec::new();
    };
    use x509_parser::prelude::FromDer;
    x509_parser::certification_request::X509CertificationRequest::from_der(der.contents())
        .map(|(_, req)| {
            req.certification_request_info
                .subject
                .iter_organization()
                .filter_map(|o| o.as_str().ok().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Picks a free address in the service CIDR (the first is the `kubernetes` service's).
fn allocate_ip(cidr: &ipnet::IpNet, used: &[IpAddr]) -> Option<String> {
    let mut seed = [0u8; 4];
    let _ = aws_lc_rs::rand::fill(&mut seed);
    let hosts: Vec<IpAddr> = cidr.hosts().skip(1).take(4096).collect();
    if hosts.is_empty() {
        return None;
    }
    let start = u32::from_le_bytes(seed) as usize % hosts.len();
    (0..hosts.len())
        .map(|i| hosts[(start + i) % hosts.len()])
        .find(|ip| !used.contains(ip))
        .map(|ip| ip.to_string())
}

/// Where the ServiceAccount admission plugin mounts the API credentials.
pub const SERVICE_ACCOUNT_MOUNT: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// The ServiceAccount admission plugin's mutation: `default` as the account when none is named,
/// and unless automounting is off, a projected `kube-api-access-<suffix>` volume (a bound token,
/// `kube-root-ca.crt`'s ca.crt and the namespace) mounted read-only in every container at
/// /var/run/secrets/kubernetes.io/serviceaccount. (The real plugin also refuses a pod whose
/// account does not exist yet; the double does not, so controllers never wait on that race.)
pub fn admit_service_account(pod: &mut Value) {
    let spec = &mut pod["spec"];
    if spec["serviceAccountName"]
        .as_str()
        .is_none_or(str::is_empty)
    {
        spec["serviceAccountName"] = json!("default");
    }
    spec["serviceAccount"] = spec["serviceAccountName"].clone();
    if spec["automountServiceAccountToken"].as_bool() == Some(false) {
        return;
    }
    let mounted = ["containers", "initContainers"].iter().any(|k| {
        spec[*k].as_array().into_iter().flatten().any(|c| {
            c["volumeMounts"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|m| m["mountPath"].as_str() == Some(SERVICE_ACCOUNT_MOUNT))
        })
    });
    if mounted {
        return;
    }
    let name = format!("kube-api-access-{}", super::store::name_suffix());
    let volume = json!({"name": name, "projected": {"defaultMode": 420, "sources": [
        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
    ]}});
    match spec["volumes"].as_array_mut() {
        Some(v) => v.push(volume),
        None => spec["volumes"] = json!([volume]),
    }
    let mount = json!({"name": name, "readOnly": true, "mountPath": SERVICE_ACCOUNT_MOUNT});
    for k in ["containers", "initContainers"] {
        for c in spec[k].as_array_mut().into_iter().flatten() {
            match c["volumeMounts"].as_array_mut() {
                Some(m) => m.push(mount.clone()),
                None => c["volumeMounts"] = json!([mount.clone()]),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_account_admission_mounts_the_api_credentials() {
        let mut pod =
            json!({"spec": {"containers": [{"name": "a"}], "initContainers": [{"name": "i"}]}});
        admit_service_account(&mut pod);
        let spec = &pod["spec"];
        assert_eq!(spec["serviceAccountName"], "default");
        let volume = &spec["volumes"][0];
        let name = volume["name"].as_str().unwrap();
        assert!(
            name.starts_with("kube-api-access-") && name.len() == 21,
            "{name}"
        );
        assert_eq!(
            volume["projected"]["sources"][1]["configMap"]["name"],
            "kube-root-ca.crt"
        );
        for c in ["containers", "initContainers"] {
            assert_eq!(
                spec[c][0]["volumeMounts"][0]["mountPath"],
                SERVICE_ACCOUNT_MOUNT
            );
            assert_eq!(spec[c][0]["volumeMounts"][0]["readOnly"], true);
        }
        let mut off = json!({"spec": {"serviceAccountName": "robot", "automountServiceAccountToken": false, "containers": [{"name": "a"}]}});
        admit_service_account(&mut off);
        assert_eq!(off["spec"]["serviceAccountName"], "robot");
        assert!(off["spec"]["volumes"].is_null());
    }

    #[test]
    fn pod_cidrs_are_validated_and_immutable_once_set() {
        let mut causes = Causes::new();
        let mut node = json!({"spec": {"podCIDR": "10.244.1.0/24"}});
        validate_pod_cidrs(None, &mut node, &mut causes);
        assert!(causes.is_empty());
        assert_eq!(node["spec"]["podCIDRs"], json!(["10.244.1.0/24"]));
        let mut two_v4 = json!({"spec": {"podCIDRs": ["10.244.1.0/24", "10.244.2.0/24"]}});
        validate_pod_cidrs(None, &mut two_v4, &mut causes);
        assert!(
            causes[0]
                .1
                .ends_with("may specify no more than one CIDR for each IP family"),
            "{causes:?}"
        );
        let mut causes = Causes::new();
        let mut bad = json!({"spec": {"podCIDRs": ["10.244.1.0/33"]}});
        validate_pod_cidrs(None, &mut bad, &mut causes);
        assert_eq!(causes[0].0, "spec.podCIDRs[0]");
        let mut causes = Causes::new();
        let mut changed = json!({"spec": {"podCIDRs": ["10.244.9.0/24"]}});
        validate_pod_cidrs(Some(&node), &mut changed, &mut causes);
        assert_eq!(
            causes[0].1,
            "Forbidden: node updates may not change podCIDR except from \"\" to valid"
        );
        let mut causes = Causes::new();
        let mut first = json!({"spec": {"podCIDRs": ["10.244.3.0/24", "fd00::/64"]}});
        validate_pod_cidrs(Some(&json!({"spec": {}})), &mut first, &mut causes);
        assert!(causes.is_empty());
        assert_eq!(first["spec"]["podCIDR"], "10.244.3.0/24");
    }

    #[test]
    fn kubelet_label_restrictions() {
        assert!(kubelet_may_set_label("kubernetes.io/hostname"));
        assert!(kubelet_may_set_label(
            "node.kubernetes.io/exclude-from-external-load-balancers"
        ));
        assert!(kubelet_may_set_label("example.com/rack"));
        assert!(!kubelet_may_set_label(
            "node-role.kubernetes.io/control-plane"
        ));
        assert!(!kubelet_may_set_label("node-restriction.kubernetes.io/x"));
    }

    #[test]
    fn pod_updates_may_only_change_images() {
        let a = json!({"containers": [{"name": "a", "image": "x:1"}], "nodeName": "n"});
        let b = json!({"containers": [{"name": "a", "image": "x:2"}], "nodeName": "n"});
        let c = json!({"containers": [{"name": "a", "image": "x:2"}], "nodeName": "m"});
        assert_eq!(strip_mutable_pod_fields(&a), strip_mutable_pod_fields(&b));
        assert_ne!(strip_mutable_pod_fields(&a), strip_mutable_pod_fields(&c));
    }

    #[test]
    fn allocation_skips_the_first_address_and_used_ones() {
        let cidr: ipnet::IpNet = "10.96.0.0/30".parse().unwrap();
        let used: Vec<IpAddr> = vec![];
        assert_eq!(allocate_ip(&cidr, &used).unwrap(), "10.96.0.2");
        assert!(allocate_ip(&cidr, &["10.96.0.2".parse().unwrap()]).is_none());
    }
}

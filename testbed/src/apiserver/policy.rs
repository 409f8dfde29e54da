//! The default RBAC objects the real API server creates at start-up (bootstrap policy), for the
//! roles and bindings a kubeadm-style cluster relies on.

use serde_json::{Value, json};

const READ: &[&str] = &["get", "list", "watch"];
const READ_WRITE: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];
const EVENTS: &[&str] = &["create", "patch", "update"];

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> Value {
    json!({"apiGroups": groups, "resources": resources, "verbs": verbs})
}

fn named(groups: &[&str], resources: &[&str], names: &[&str], verbs: &[&str]) -> Value {
    json!({"apiGroups": groups, "resources": resources, "resourceNames": names, "verbs": verbs})
}

fn urls(paths: &[&str], verbs: &[&str]) -> Value {
    json!({"nonResourceURLs": paths, "verbs": verbs})
}

fn events_rule() -> Value {
    rule(&["", "events.k8s.io"], &["events"], EVENTS)
}

fn metadata(name: &str, namespace: Option<&str>, labels: &[(&str, &str)]) -> Value {
    let mut meta = json!({
        "name": name,
        "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"},
        "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
    });
    for (k, v) in labels {
        meta["labels"][*k] = json!(v);
    }
    if let Some(ns) = namespace {
        meta["namespace"] = json!(ns);
    }
    meta
}

fn cluster_role(name: &str, rules: Vec<Value>) -> Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": metadata(name, None, &[]), "rules": rules})
}

fn labelled_cluster_role(name: &str, labels: &[(&str, &str)], rules: Vec<Value>) -> Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": metadata(name, None, labels), "rules": rules})
}

fn aggregated_role(name: &str, labels: &[(&str, &str)], selector: &str) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": metadata(name, None, labels),
        "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {selector: "true"}}]},
        "rules": [],
    })
}

fn role(namespace: &str, name: &str, rules: Vec<Value>) -> Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": metadata(name, Some(namespace), &[]), "rules": rules})
}

pub fn group(name: &str) -> Value {
    json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": name})
}

pub fn user(name: &str) -> Value {
    json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": name})
}

pub fn service_account(namespace: &str, name: &str) -> Value {
    json!({"kind": "ServiceAccount", "name": name, "namespace": namespace})
}

fn cluster_binding(name: &str, role: &str, subjects: Vec<Value>) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": metadata(name, None, &[]),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": subjects,
    })
}

fn binding(namespace: &str, name: &str, role: &str, subjects: Vec<Value>) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": metadata(name, Some(namespace), &[]),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role},
        "subjects": subjects,
    })
}

const SIGNERS: &[&str] = &[
    "kubernetes.io/kube-apiserver-client",
    "kubernetes.io/kube-apiserver-client-kubelet",
    "kubernetes.io/kubelet-serving",
    "kubernetes.io/legacy-unknown",
];

/// The rules of the `system:node` role, which the Node authorizer also applies to node identities.
pub fn node_rules() -> Vec<Value> {
    vec![
        rule(&["authentication.k8s.io"], &["tokenreviews"], &["create"]),
        rule(
            &["authorization.k8s.io"],
            &["localsubjectaccessreviews", "subjectaccessreviews"],
            &["create"],
        ),
        rule(&[""], &["services"], READ),
        rule(&[""], &["nodes"], &["create", "get", "list", "watch"]),
        rule(&[""], &["nodes/status"], &["patch", "update"]),
        rule(&[""], &["nodes"], &["delete", "patch", "update"]),
        events_rule(),
        rule(&[""], &["pods"], READ),
        rule(&[""], &["pods"], &["create", "delete"]),
        rule(&[""], &["pods/status"], &["patch", "update"]),
        rule(&[""], &["pods/eviction"], &["create"]),
        rule(&[""], &["configmaps", "secrets"], &["get", "list", "watch"]),
        rule(
            &[""],
            &["persistentvolumeclaims", "persistentvolumes"],
            &["get"],
        ),
        rule(&[""], &["endpoints"], &["get"]),
        rule(
            &["certificates.k8s.io"],
            &["certificatesigningrequests"],
            &["create", "get", "list", "watch"],
        ),
        rule(
            &["coordination.k8s.io"],
            &["leases"],
            &["create", "delete", "get", "patch", "update"],
        ),
        rule(&["storage.k8s.io"], &["volumeattachments"], &["get"]),
        rule(&[""], &["serviceaccounts/token"], &["create"]),
        rule(
            &[""],
            &["persistentvolumeclaims/status"],
            &["get", "patch", "update"],
        ),
        rule(&["storage.k8s.io"], &["csidrivers"], READ),
        rule(
            &["storage.k8s.io"],
            &["csinodes"],
            &["create", "delete", "get", "patch", "update"],
        ),
        rule(&["node.k8s.io"], &["runtimeclasses"], READ),
    ]
}

/// Every default ClusterRole.
pub fn cluster_roles() -> Vec<Value> {
    let agg = "rbac.authorization.k8s.io/aggregate-to-";
    vec![
        cluster_role(
            "cluster-admin",
            vec![rule(&["*"], &["*"], &["*"]), urls(&["*"], &["*"])],
        ),
        cluster_role(
            "system:discovery",
            vec![urls(
                &[
                    "/api",
                    "/api/*",
                    "/apis",
                    "/apis/*",
                    "/healthz",
                    "/livez",
                    "/openapi",
                    "/openapi/*",
                    "/readyz",
                    "/version",
                    "/version/",
                ],
                &["get"],
            )],
        ),
        cluster_role(
            "system:monitoring",
            vec![urls(
                &[
                    "/healthz",
                    "/healthz/*",
                    "/livez",
                    "/livez/*",
                    "/metrics",
                    "/metrics/slis",
                    "/readyz",
                    "/readyz/*",
                ],
                &["get"],
            )],
        ),
        cluster_role(
            "system:basic-user",
            vec![
                rule(
                    &["authorization.k8s.io"],
                    &["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                    &["create"],
                ),
                rule(
                    &["authentication.k8s.io"],
                    &["selfsubjectreviews"],
                    &["create"],
                ),
            ],
        ),
        cluster_role(
            "system:public-info-viewer",
            vec![urls(
                &["/healthz", "/livez", "/readyz", "/version", "/version/"],
                &["get"],
            )],
        ),
        aggregated_role("admin", &[], &format!("{agg}admin")),
        aggregated_role(
            "edit",
            &[(&format!("{agg}admin"), "true")],
            &format!("{agg}edit"),
        ),
        aggregated_role(
            "view",
            &[(&format!("{agg}edit"), "true")],
            &format!("{agg}view"),
        ),
        labelled_cluster_role(
            "system:aggregate-to-admin",
            &[(&format!("{agg}admin"), "true")],
            vec![
                rule(
                    &["authorization.k8s.io"],
                    &["localsubjectaccessreviews"],
                    &["create"],
                ),
                rule(
                    &["rbac.authorization.k8s.io"],
                    &["rolebindings", "roles"],
                    READ_WRITE,
                ),
            ],
        ),
        labelled_cluster_role(
            "system:aggregate-to-edit",
            &[(&format!("{agg}edit"), "true")],
            vec![
                rule(
                    &[""],
                    &[
                        "pods",
                        "pods/attach",
                        "pods/exec",
                        "pods/portforward",
                        "pods/proxy",
                    ],
                    READ_WRITE,
                ),
                rule(
                    &[""],
                    &[
                        "configmaps",
                        "endpoints",
                        "persistentvolumeclaims",
                        "replicationcontrollers",
                        "replicationcontrollers/scale",
                        "secrets",
                        "serviceaccounts",
                        "services",
                        "services/proxy",
                    ],
                    READ_WRITE,
                ),
                rule(&[""], &["serviceaccounts/token"], &["create"]),
                rule(
                    &["apps"],
                    &[
                        "daemonsets",
                        "deployments",
                        "deployments/rollback",
                        "deployments/scale",
                        "replicasets",
                        "replicasets/scale",
                        "statefulsets",
                        "statefulsets/scale",
                    ],
                    READ_WRITE,
                ),
                rule(&["batch"], &["cronjobs", "jobs"], READ_WRITE),
                rule(
                    &["networking.k8s.io"],
                    &["ingresses", "networkpolicies"],
                    READ_WRITE,
                ),
                rule(&["policy"], &["poddisruptionbudgets"], READ_WRITE),
                rule(&["coordination.k8s.io"], &["leases"], READ_WRITE),
            ],
        ),
        labelled_cluster_role(
            "system:aggregate-to-view",
            &[(&format!("{agg}view"), "true")],
            vec![
                rule(
                    &[""],
                    &[
                        "configmaps",
                        "endpoints",
                        "persistentvolumeclaims",
                        "persistentvolumeclaims/status",
                        "pods",
                        "replicationcontrollers",
                        "replicationcontrollers/scale",
                        "serviceaccounts",
                        "services",
                        "services/status",
                    ],
                    READ,
                ),
                rule(
                    &[""],
                    &[
                        "bindings",
                        "events",
                        "limitranges",
                        "namespaces/status",
                        "pods/log",
                        "pods/status",
                        "replicationcontrollers/status",
                        "resourcequotas",
                        "resourcequotas/status",
                    ],
                    READ,
                ),
                rule(&[""], &["namespaces"], READ),
                rule(
                    &["apps"],
                    &[
                        "controllerrevisions",
                        "daemonsets",
                        "daemonsets/status",
                        "deployments",
                        "deployments/scale",
                        "deployments/status",
                        "replicasets",
                        "replicasets/scale",
                        "replicasets/status",
                        "statefulsets",
                        "statefulsets/scale",
                        "statefulsets/status",
                    ],
                    READ,
                ),
                rule(
                    &["batch"],
                    &["cronjobs", "cronjobs/status", "jobs", "jobs/status"],
                    READ,
                ),
                rule(&["discovery.k8s.io"], &["endpointslices"], READ),
                rule(
                    &["policy"],
                    &["poddisruptionbudgets", "poddisruptionbudgets/status"],
                    READ,
                ),
                rule(
                    &["networking.k8s.io"],
                    &["ingresses", "ingresses/status", "networkpolicies"],
                    READ,
                ),
            ],
        ),
        cluster_role("system:node", node_rules()),
        cluster_role(
            "system:node-proxier",
            vec![
                rule(&[""], &["endpoints", "services"], &["list", "watch"]),
                rule(&[""], &["nodes"], READ),
                events_rule(),
                rule(
                    &["discovery.k8s.io"],
                    &["endpointslices"],
                    &["list", "watch"],
                ),
            ],
        ),
        cluster_role(
            "system:node-bootstrapper",
            vec![rule(
                &["certificates.k8s.io"],
                &["certificatesigningrequests"],
                &["create", "get", "list", "watch"],
            )],
        ),
        cluster_role(
            "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
            vec![rule(
                &["certificates.k8s.io"],
                &["certificatesigningrequests/nodeclient"],
                &["create"],
            )],
        ),
        cluster_role(
            "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
            vec![rule(
                &["certificates.k8s.io"],
                &["certificatesigningrequests/selfnodeclient"],
                &["create"],
            )],
        ),
        cluster_role(
            "system:certificates.k8s.io:kube-apiserver-client-approver",
            vec![named(
                &["certificates.k8s.io"],
                &["signers"],
                &["kubernetes.io/kube-apiserver-client"],
                &["approve"],
            )],
        ),
        cluster_role(
            "system:certificates.k8s.io:kube-apiserver-client-kubelet-approver",
            vec![named(
                &["certificates.k8s.io"],
                &["signers"],
                &["kubernetes.io/kube-apiserver-client-kubelet"],
                &["approve"],
            )],
        ),
        cluster_role(
            "system:certificates.k8s.io:kubelet-serving-approver",
            vec![named(
                &["certificates.k8s.io"],
                &["signers"],
                &["kubernetes.io/kubelet-serving"],
                &["approve"],
            )],
        ),
        cluster_role(
            "system:certificates.k8s.io:legacy-unknown-approver",
            vec![named(
                &["certificates.k8s.io"],
                &["signers"],
                &["kubernetes.io/legacy-unknown"],
                &["approve"],
            )],
        ),
        cluster_role(
            "system:auth-delegator",
            vec![
                rule(&["authentication.k8s.io"], &["tokenreviews"], &["create"]),
                rule(
                    &["authorization.k8s.io"],
                    &["subjectaccessreviews"],
                    &["create"],
                ),
            ],
        ),
        cluster_role(
            "system:kube-controller-manager",
            vec![
                events_rule(),
                rule(&["coordination.k8s.io"], &["leases"], &["create"]),
                named(
                    &["coordination.k8s.io"],
                    &["leases"],
                    &["kube-controller-manager"],
                    &["get", "update"],
                ),
                rule(&[""], &["secrets", "serviceaccounts"], &["create"]),
                rule(&[""], &["secrets"], &["delete"]),
                rule(
                    &[""],
                    &["configmaps", "namespaces", "secrets", "serviceaccounts"],
                    &["get"],
                ),
                rule(&[""], &["secrets", "serviceaccounts"], &["update"]),
                rule(&["authentication.k8s.io"], &["tokenreviews"], &["create"]),
                rule(
                    &["authorization.k8s.io"],
                    &["subjectaccessreviews"],
                    &["create"],
                ),
                rule(&["*"], &["*"], &["list", "watch"]),
                rule(&[""], &["serviceaccounts/token"], &["create"]),
            ],
        ),
        cluster_role(
            "system:kube-scheduler",
            vec![
                events_rule(),
                rule(&["coordination.k8s.io"], &["leases"], &["create"]),
                named(
                    &["coordination.k8s.io"],
                    &["leases"],
                    &["kube-scheduler"],
                    &["get", "update"],
                ),
                rule(&[""], &["nodes"], READ),
                rule(&[""], &["namespaces"], READ),
                rule(&[""], &["pods"], &["delete", "get", "list", "watch"]),
                rule(&[""], &["bindings", "pods/binding"], &["create"]),
                rule(&[""], &["pods/status"], &["patch", "update"]),
                rule(&[""], &["replicationcontrollers", "services"], READ),
                rule(&["apps"], &["replicasets", "statefulsets"], READ),
                rule(&["policy"], &["poddisruptionbudgets"], READ),
                rule(
                    &[""],
                    &["persistentvolumeclaims", "persistentvolumes"],
                    READ,
                ),
                rule(&["authentication.k8s.io"], &["tokenreviews"], &["create"]),
                rule(
                    &["authorization.k8s.io"],
                    &["subjectaccessreviews"],
                    &["create"],
                ),
                rule(
                    &["storage.k8s.io"],
                    &["csidrivers", "csinodes", "csistoragecapacities"],
                    READ,
                ),
            ],
        ),
        cluster_role(
            "system:volume-scheduler",
            vec![
                rule(
                    &[""],
                    &["persistentvolumes"],
                    &["get", "list", "patch", "update", "watch"],
                ),
                rule(&["storage.k8s.io"], &["storageclasses"], READ),
                rule(
                    &[""],
                    &["persistentvolumeclaims"],
                    &["get", "list", "patch", "update", "watch"],
                ),
            ],
        ),
        cluster_role(
            "system:kube-dns",
            vec![rule(&[""], &["endpoints", "services"], &["list", "watch"])],
        ),
        cluster_role(
            "system:kubelet-api-admin",
            vec![
                rule(&[""], &["nodes"], &["get", "list", "watch"]),
                rule(&[""], &["nodes"], &["proxy"]),
                rule(
                    &[""],
                    &[
                        "nodes/checkpoint",
                        "nodes/configz",
                        "nodes/healthz",
                        "nodes/log",
                        "nodes/metrics",
                        "nodes/pods",
                        "nodes/proxy",
                        "nodes/stats",
                    ],
                    &["*"],
                ),
            ],
        ),
        cluster_role(
            "system:service-account-issuer-discovery",
            vec![urls(
                &[
                    "/.well-known/openid-configuration",
                    "/.well-known/openid-configuration/",
                    "/openid/v1/jwks",
                    "/openid/v1/jwks/",
                ],
                &["get"],
            )],
        ),
        cluster_role(
            "system:controller:certificate-controller",
            vec![
                rule(
                    &["certificates.k8s.io"],
                    &["certificatesigningrequests"],
                    &["delete", "get", "list", "watch"],
                ),
                rule(
                    &["certificates.k8s.io"],
                    &[
                        "certificatesigningrequests/approval",
                        "certificatesigningrequests/status",
                    ],
                    &["update"],
                ),
                named(
                    &["certificates.k8s.io"],
                    &["signers"],
                    SIGNERS,
                    &["approve"],
                ),
                named(&["certificates.k8s.io"], &["signers"], SIGNERS, &["sign"]),
                rule(
                    &["authorization.k8s.io"],
                    &["subjectaccessreviews"],
                    &["create"],
                ),
                events_rule(),
            ],
        ),
        cluster_role(
            "system:controller:root-ca-cert-publisher",
            vec![
                rule(&[""], &["configmaps"], &["create", "update"]),
                events_rule(),
            ],
        ),
        cluster_role(
            "system:controller:service-account-controller",
            vec![
                rule(&[""], &["serviceaccounts"], &["create"]),
                events_rule(),
            ],
        ),
        cluster_role(
            "system:controller:node-controller",
            vec![
                rule(
                    &[""],
                    &["nodes"],
                    &["delete", "get", "list", "patch", "update", "watch"],
                ),
                rule(&[""], &["nodes/status"], &["patch", "update"]),
                rule(&[""], &["pods/status"], &["patch", "update"]),
                rule(&[""], &["pods"], &["delete", "get", "list", "watch"]),
                events_rule(),
            ],
        ),
        cluster_role(
            "system:controller:daemon-set-controller",
            vec![
                rule(&["extensions", "apps"], &["daemonsets"], READ),
                rule(&["extensions", "apps"], &["daemonsets/status"], &["update"]),
                rule(
                    &["extensions", "apps"],
                    &["daemonsets/finalizers"],
                    &["update"],
                ),
                rule(&[""], &["nodes"], &["list", "watch"]),
                rule(
                    &[""],
                    &["pods"],
                    &["create", "delete", "list", "patch", "watch"],
                ),
                rule(&[""], &["pods/binding"], &["create"]),
                rule(
                    &["apps"],
                    &["controllerrevisions"],
                    &[
                        "create", "delete", "get", "list", "patch", "update", "watch",
                    ],
                ),
                events_rule(),
            ],
        ),
        cluster_role(
            "system:controller:deployment-controller",
            vec![
                rule(
                    &["extensions", "apps"],
                    &["deployments"],
                    &["get", "list", "update", "watch"],
                ),
                rule(
                    &["extensions", "apps"],
                    &["deployments/status"],
                    &["update"],
                ),
                rule(
                    &["extensions", "apps"],
                    &["deployments/finalizers"],
                    &["update"],
                ),
                rule(
                    &["apps", "extensions"],
                    &["replicasets"],
                    &[
                        "create", "delete", "get", "list", "patch", "update", "watch",
                    ],
                ),
                rule(&[""], &["pods"], &["get", "list", "update", "watch"]),
                events_rule(),
            ],
        ),
        cluster_role(
            "system:controller:replicaset-controller",
            vec![
                rule(
                    &["apps", "extensions"],
                    &["replicasets"],
                    &["get", "list", "update", "watch"],
                ),
                rule(
                    &["apps", "extensions"],
                    &["replicasets/status"],
                    &["update"],
                ),
                rule(
                    &["apps", "extensions"],
                    &["replicasets/finalizers"],
                    &["update"],
                ),
                rule(
                    &[""],
                    &["pods"],
                    &["create", "delete", "list", "patch", "watch"],
                ),
                events_rule(),
            ],
        ),
        cluster_role(
            "system:controller:endpoint-controller",
            vec![
                rule(&[""], &["pods", "services"], READ),
                rule(
                    &[""],
                    &["endpoints"],
                    &["create", "delete", "get", "list", "update", "watch"],
                ),
                rule(&[""], &["endpoints/restricted"], &["create"]),
                events_rule(),
            ],
        ),
        cluster_role(
            "system:controller:endpointslice-controller",
            vec![
                rule(&[""], &["nodes", "pods", "services"], READ),
                rule(&[""], &["services/finalizers"], &["update"]),
                rule(
                    &["discovery.k8s.io"],
                    &["endpointslices"],
                    &["create", "delete", "get", "list", "update", "watch"],
                ),
                events_rule(),
            ],
        ),
        cluster_role(
            "system:controller:generic-garbage-collector",
            vec![
                rule(
                    &["*"],
                    &["*"],
                    &["delete", "get", "list", "patch", "update", "watch"],
                ),
                events_rule(),
            ],
        ),
    ]
}

/// `system:controller:<name>` bound to the kube-system/<name> service account, as the real
/// bootstrap policy binds every controller role.
fn controller_binding(name: &str) -> Value {
    let role = format!("system:controller:{name}");
    cluster_binding(&role, &role, vec![service_account("kube-system", name)])
}

pub fn cluster_role_bindings() -> Vec<Value> {
    vec![
        cluster_binding(
            "cluster-admin",
            "cluster-admin",
            vec![group("system:masters")],
        ),
        cluster_binding(
            "system:discovery",
            "system:discovery",
            vec![group("system:authenticated")],
        ),
        cluster_binding(
            "system:basic-user",
            "system:basic-user",
            vec![group("system:authenticated")],
        ),
        cluster_binding(
            "system:public-info-viewer",
            "system:public-info-viewer",
            vec![
                group("system:authenticated"),
                group("system:unauthenticated"),
            ],
        ),
        cluster_binding(
            "system:monitoring",
            "system:monitoring",
            vec![group("system:monitoring")],
        ),
        cluster_binding("system:node", "system:node", vec![]),
        cluster_binding(
            "system:node-proxier",
            "system:node-proxier",
            vec![user("system:kube-proxy")],
        ),
        cluster_binding(
            "system:kube-controller-manager",
            "system:kube-controller-manager",
            vec![user("system:kube-controller-manager")],
        ),
        cluster_binding(
            "system:kube-scheduler",
            "system:kube-scheduler",
            vec![user("system:kube-scheduler")],
        ),
        cluster_binding(
            "system:volume-scheduler",
            "system:volume-scheduler",
            vec![user("system:kube-scheduler")],
        ),
        cluster_binding(
            "system:kube-dns",
            "system:kube-dns",
            vec![service_account("kube-system", "kube-dns")],
        ),
        cluster_binding(
            "system:service-account-issuer-discovery",
            "system:service-account-issuer-discovery",
            vec![group("system:serviceaccounts")],
        ),
        cluster_binding(
            "system:controller:certificate-controller",
            "system:controller:certificate-controller",
            vec![service_account("kube-system", "certificate-controller")],
        ),
        cluster_binding(
            "system:controller:root-ca-cert-publisher",
            "system:controller:root-ca-cert-publisher",
            vec![service_account("kube-system", "root-ca-cert-publisher")],
        ),
        cluster_binding(
            "system:controller:node-controller",
            "system:controller:node-controller",
            vec![service_account("kube-system", "node-controller")],
        ),
        controller_binding("daemon-set-controller"),
        controller_binding("deployment-controller"),
        controller_binding("replicaset-controller"),
        controller_binding("endpoint-controller"),
        controller_binding("endpointslice-controller"),
        controller_binding("generic-garbage-collector"),
        cluster_binding(
            "system:controller:service-account-controller",
            "system:controller:service-account-controller",
            vec![service_account("kube-system", "service-account-controller")],
        ),
    ]
}

/// Namespaced default Roles and RoleBindings (kube-system and kube-public).
pub fn namespaced() -> Vec<Value> {
    vec![
        role(
            "kube-system",
            "extension-apiserver-authentication-reader",
            vec![named(
                &[""],
                &["configmaps"],
                &["extension-apiserver-authentication"],
                &["get", "list", "watch"],
            )],
        ),
        role(
            "kube-system",
            "system::leader-locking-kube-controller-manager",
            vec![
                rule(&[""], &["configmaps"], &["watch"]),
                named(
                    &[""],
                    &["configmaps"],
                    &["kube-controller-manager"],
                    &["get", "update"],
                ),
            ],
        ),
        role(
            "kube-system",
            "system::leader-locking-kube-scheduler",
            vec![
                rule(&[""], &["configmaps"], &["watch"]),
                named(
                    &[""],
                    &["configmaps"],
                    &["kube-scheduler"],
                    &["get", "update"],
                ),
            ],
        ),
        role(
            "kube-system",
            "system:controller:bootstrap-signer",
            vec![rule(&[""], &["secrets"], READ)],
        ),
        role(
            "kube-system",
            "system:controller:token-cleaner",
            vec![
                rule(&[""], &["secrets"], &["delete", "get", "list", "watch"]),
                events_rule(),
            ],
        ),
        role(
            "kube-public",
            "system:controller:bootstrap-signer",
            vec![
                rule(&[""], &["configmaps"], READ),
                named(&[""], &["configmaps"], &["cluster-info"], &["update"]),
                events_rule(),
            ],
        ),
        binding(
            "kube-system",
            "system::extension-apiserver-authentication-reader",
            "extension-apiserver-authentication-reader",
            vec![
                user("system:kube-controller-manager"),
                user("system:kube-scheduler"),
            ],
        ),
        binding(
            "kube-system",
            "system::leader-locking-kube-controller-manager",
            "system::leader-locking-kube-controller-manager",
            vec![
                service_account("kube-system", "kube-controller-manager"),
                user("system:kube-controller-manager"),
            ],
        ),
        binding(
            "kube-system",
            "system::leader-locking-kube-scheduler",
            "system::leader-locking-kube-scheduler",
            vec![
                service_account("kube-system", "kube-scheduler"),
                user("system:kube-scheduler"),
            ],
        ),
        binding(
            "kube-system",
            "system:controller:bootstrap-signer",
            "system:controller:bootstrap-signer",
            vec![service_account("kube-system", "bootstrap-signer")],
        ),
        binding(
            "kube-system",
            "system:controller:token-cleaner",
            "system:controller:token-cleaner",
            vec![service_account("kube-system", "token-cleaner")],
        ),
        binding(
            "kube-public",
            "system:controller:bootstrap-signer",
            "system:controller:bootstrap-signer",
            vec![service_account("kube-system", "bootstrap-signer")],
        ),
    ]
}

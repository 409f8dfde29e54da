//! Discovery documents (`/api`, `/apis`, resource lists) and `/version`, in the legacy (unaggregated)
//! form that kubectl falls back to.

use serde_json::{Value, json};

use super::registry::{Registry, ResourceType};

pub fn core_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

fn group_entry(name: &str, versions: &[String]) -> Value {
    let list: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v}))
        .collect();
    json!({"name": name, "versions": list, "preferredVersion": list.first().cloned().unwrap_or(Value::Null)})
}

pub fn group_list(registry: &Registry) -> Value {
    let groups: Vec<Value> = registry
        .groups()
        .iter()
        .filter(|(g, _)| !g.is_empty())
        .map(|(g, v)| group_entry(g, v))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

pub fn group(registry: &Registry, name: &str) -> Option<Value> {
    registry
        .groups()
        .into_iter()
        .find(|(g, _)| g == name)
        .map(|(g, v)| {
            let mut entry = group_entry(&g, &v);
            entry["kind"] = json!("APIGroup");
            entry["apiVersion"] = json!("v1");
            entry
        })
}

/// The kind, group and version a subresource is served as, and its verbs.
fn subresource(rt: &ResourceType, sub: &str) -> (Value, Vec<&'static str>) {
    let same = json!({"kind": rt.kind});
    match sub {
        "status" | "approval" | "finalize" => (
            same,
            if sub == "finalize" {
                vec!["update"]
            } else {
                vec!["get", "patch", "update"]
            },
        ),
        "scale" => (
            json!({"group": "autoscaling", "version": "v1", "kind": "Scale"}),
            vec!["get", "patch", "update"],
        ),
        "binding" => (json!({"kind": "Binding"}), vec!["create"]),
        "eviction" => (
            json!({"group": "policy", "version": "v1", "kind": "Eviction"}),
            vec!["create"],
        ),
        "token" => (
            json!({"group": "authentication.k8s.io", "version": "v1", "kind": "TokenRequest"}),
            vec!["create"],
        ),
        "log" => (json!({"kind": "Pod"}), vec!["get"]),
        _ => (
            json!({"kind": format!("{}Proxy", rt.kind)}),
            vec!["create", "delete", "get", "patch", "update"],
        ),
    }
}

pub fn resource_list(registry: &Registry, group: &str, version: &str) -> Option<Value> {
    let types: Vec<&ResourceType> = registry
        .types
        .iter()
        .filter(|t| t.group == group && t.version == version)
        .collect();
    if types.is_empty() {
        return None;
    }
    let mut resources = Vec::new();
    for t in types {
        let mut entry = json!({
            "name": t.plural,
            "singularName": t.singular,
            "namespaced": t.namespaced,
            "kind": t.kind,
            "verbs": t.verbs(),
        });
        if !t.short_names.is_empty() {
            entry["shortNames"] = json!(t.short_names);
        }
        if !t.categories.is_empty() {
            entry["categories"] = json!(t.categories);
        } else if matches!(
            t.kind.as_str(),
            "Pod"
                | "Service"
                | "Deployment"
                | "DaemonSet"
                | "ReplicaSet"
                | "StatefulSet"
                | "Job"
                | "CronJob"
                | "ReplicationController"
        ) {
            entry["categories"] = json!(["all"]);
        }
        resources.push(entry);
        for sub in &t.subresources {
            let (kind, verbs) = subresource(t, sub);
            let mut e = json!({"name": format!("{}/{sub}", t.plural), "singularName": "", "namespaced": t.namespaced, "verbs": verbs});
            for (k, v) in kind.as_object().into_iter().flatten() {
                e[k] = v.clone();
            }
            resources.push(e);
        }
    }
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources}),
    )
}

/// `/version` for a git version such as `v1.34.3`.
pub fn version(git_version: &str) -> Value {
    let numbers = git_version.trim_start_matches('v');
    let mut parts = numbers.split('.');
    let major = parts.next().unwrap_or("1");
    let minor = parts.next().unwrap_or("0");
    json!({
        "major": major,
        "minor": minor,
        "emulationMajor": major,
        "emulationMinor": minor,
        "minCompatibilityMajor": major,
        "minCompatibilityMinor": minor.parse::<u32>().map(|m| m.saturating_sub(1).to_string()).unwrap_or_default(),
        "gitVersion": git_version,
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.24.0 (kubestrap testbed double)",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// `/openapi/v3`: one document per group/version.
pub fn openapi_v3_root(registry: &Registry) -> Value {
    let mut paths = serde_json::Map::new();
    for (group, versions) in registry.groups() {
        for version in versions {
            let path = gv_path(&group, &version);
            paths.insert(path.clone(), json!({"serverRelativeURL": format!("/openapi/v3/{path}?hash=testbed-{}", registry.types.len())}));
        }
    }
    json!({"paths": paths})
}

/// An OpenAPI v3 document for one group/version with the operations kubectl inspects: PATCH on
/// each object carries the GVK extension and the fieldValidation parameter, so kubectl leaves
/// validation to the server. Schemas are not published (kubectl then computes strategic merge
/// patches from its compiled-in types, as it does for servers without schemas).
pub fn openapi_v3_group_version(registry: &Registry, group: &str, version: &str) -> Option<Value> {
    let types: Vec<&ResourceType> = registry
        .types
        .iter()
        .filter(|t| t.group == group && t.version == version && !t.virtual_create_only)
        .collect();
    if types.is_empty() {
        return None;
    }
    let mut paths = serde_json::Map::new();
    for t in types {
        let base = format!("/{}", gv_path(group, version));
        let item = if t.namespaced {
            format!("{base}/namespaces/{{namespace}}/{}/{{name}}", t.plural)
        } else {
            format!("{base}/{}/{{name}}", t.plural)
        };
        let gvk = json!({"group": t.group, "version": t.version, "kind": t.kind});
        let params = json!([
            {"name": "dryRun", "in": "query", "schema": {"type": "string"}},
            {"name": "fieldManager", "in": "query", "schema": {"type": "string"}},
            {"name": "fieldValidation", "in": "query", "schema": {"type": "string"}},
        ]);
        let op = |verb: &str| json!({"operationId": format!("{verb}{}", t.kind), "x-kubernetes-action": verb, "x-kubernetes-group-version-kind": gvk, "parameters": params, "responses": {"200": {"description": "OK"}}});
        paths.insert(item, json!({"get": op("get"), "put": op("put"), "patch": op("patch"), "delete": op("delete")}));
    }
    Some(
        json!({"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "testbed"}, "paths": paths, "components": {"schemas": {}}}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_lists_groups_resources_and_subresources() {
        let r = Registry::built_in();
        let groups = group_list(&r);
        assert!(
            groups["groups"]
                .as_array()
                .unwrap()
                .iter()
                .any(|g| g["name"] == "certificates.k8s.io")
        );
        let core = resource_list(&r, "", "v1").unwrap();
        let names: Vec<&str> = core["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        assert!(
            names.contains(&"nodes")
                && names.contains(&"pods/status")
                && names.contains(&"serviceaccounts/token")
        );
        assert!(resource_list(&r, "nope", "v1").is_none());
        assert_eq!(version("v1.34.3")["minor"], "34");
    }
}

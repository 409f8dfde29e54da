//! What the gateway's waits wait for, as pure checks of an object (absent = `None`): a ConfigMap key, a
//! DaemonSet rolled out, a Node Ready, a CRD established. Each says what it saw when it is not there yet.

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{ConfigMap, Node};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;

/// The result of checking an object against what a wait wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    Met,
    /// Not yet, with what was seen (shown when the wait times out).
    Waiting(String),
}

impl Check {
    fn waiting(text: impl Into<String>) -> Check {
        Check::Waiting(text.into())
    }
}

pub fn configmap_has_key(
    key: &str,
) -> impl Fn(Option<&ConfigMap>) -> Check + Send + Sync + 'static {
    let key = key.to_string();
    move |cm| match cm {
        None => Check::waiting("the ConfigMap does not exist"),
        Some(cm) => {
            let in_data = cm.data.as_ref().is_some_and(|d| d.contains_key(&key));
            let in_binary = cm
                .binary_data
                .as_ref()
                .is_some_and(|d| d.contains_key(&key));
            if in_data || in_binary {
                Check::Met
            } else {
                Check::Waiting(format!("the ConfigMap has no key {key:?}"))
            }
        }
    }
}

/// Rolled out as `kubectl rollout status` judges it: the controller saw the current generation, and
/// every node that should run the pod runs an updated, available one.
pub fn daemonset_ready(ds: Option<&DaemonSet>) -> Check {
    let Some(ds) = ds else {
        return Check::waiting("the DaemonSet does not exist");
    };
    let Some(status) = &ds.status else {
        return Check::waiting("the DaemonSet has no status yet");
    };
    let generation = ds.metadata.generation.unwrap_or(0);
    if status.observed_generation.unwrap_or(0) < generation {
        return Check::Waiting(format!(
            "the controller has not seen generation {generation} yet"
        ));
    }
    let desired = status.desired_number_scheduled;
    let updated = status.updated_number_scheduled.unwrap_or(0);
    let available = status.number_available.unwrap_or(0);
    if updated < desired {
        return Check::Waiting(format!("{updated} of {desired} pods updated"));
    }
    if available < desired {
        return Check::Waiting(format!("{available} of {desired} updated pods available"));
    }
    Check::Met
}

pub fn node_ready(node: Option<&Node>) -> Check {
    let Some(node) = node else {
        return Check::waiting("the Node is not registered");
    };
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"));
    match ready {
        Some(c) if c.status == "True" => Check::Met,
        Some(c) => Check::Waiting(format!(
            "Ready={}{}",
            c.status,
            c.reason
                .as_ref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        )),
        None => Check::waiting("the Node has no Ready condition yet"),
    }
}

pub fn crd_established(crd: Option<&CustomResourceDefinition>) -> Check {
    let Some(crd) = crd else {
        return Check::waiting("the CustomResourceDefinition does not exist");
    };
    let conditions = crd.status.as_ref().and_then(|s| s.conditions.as_ref());
    let established = conditions
        .into_iter()
        .flatten()
        .find(|c| c.type_ == "Established");
    match established {
        Some(c) if c.status == "True" => Check::Met,
        Some(c) => Check::Waiting(format!("Established={}", c.status)),
        None => Check::waiting("the CustomResourceDefinition is not established yet"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn from<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn configmap_key_in_data_or_binary_data() {
        let check = configmap_has_key("jws-kubeconfig-abcdef");
        assert_eq!(
            check(None),
            Check::Waiting("the ConfigMap does not exist".into())
        );
        let without: ConfigMap =
            from(json!({"metadata": {"name": "cluster-info"}, "data": {"kubeconfig": "x"}}));
        assert_eq!(
            check(Some(&without)),
            Check::Waiting("the ConfigMap has no key \"jws-kubeconfig-abcdef\"".into())
        );
        let with: ConfigMap = from(
            json!({"metadata": {"name": "cluster-info"}, "data": {"jws-kubeconfig-abcdef": "sig"}}),
        );
        assert_eq!(check(Some(&with)), Check::Met);
        let binary: ConfigMap = from(
            json!({"metadata": {"name": "c"}, "binaryData": {"jws-kubeconfig-abcdef": "AA=="}}),
        );
        assert_eq!(check(Some(&binary)), Check::Met);
    }

    #[test]
    fn daemonset_rollout_like_kubectl() {
        let ds = |generation: i64, status: serde_json::Value| -> DaemonSet {
            from(
                json!({"metadata": {"name": "kube-proxy", "generation": generation}, "spec": {"selector": {}, "template": {}}, "status": status}),
            )
        };
        let base = json!({"currentNumberScheduled": 3, "desiredNumberScheduled": 3, "numberMisscheduled": 0, "numberReady": 3, "observedGeneration": 2, "updatedNumberScheduled": 3, "numberAvailable": 3});
        assert_eq!(daemonset_ready(Some(&ds(2, base.clone()))), Check::Met);
        assert_eq!(
            daemonset_ready(Some(&ds(3, base.clone()))),
            Check::Waiting("the controller has not seen generation 3 yet".into())
        );
        let mut partial = base.clone();
        partial["numberAvailable"] = json!(1);
        assert_eq!(
            daemonset_ready(Some(&ds(2, partial))),
            Check::Waiting("1 of 3 updated pods available".into())
        );
        let mut old = base;
        old["updatedNumberScheduled"] = json!(2);
        assert_eq!(
            daemonset_ready(Some(&ds(2, old))),
            Check::Waiting("2 of 3 pods updated".into())
        );
        let none = json!({"currentNumberScheduled": 0, "desiredNumberScheduled": 0, "numberMisscheduled": 0, "numberReady": 0, "observedGeneration": 1});
        assert_eq!(daemonset_ready(Some(&ds(1, none))), Check::Met);
        assert!(matches!(daemonset_ready(None), Check::Waiting(_)));
    }

    #[test]
    fn node_ready_reads_the_ready_condition() {
        let node = |status: &str| -> Node {
            from(
                json!({"metadata": {"name": "n1"}, "status": {"conditions": [
                {"type": "MemoryPressure", "status": "False"},
                {"type": "Ready", "status": status, "reason": "KubeletNotReady"}]}}),
            )
        };
        assert_eq!(node_ready(Some(&node("True"))), Check::Met);
        assert_eq!(
            node_ready(Some(&node("False"))),
            Check::Waiting("Ready=False (KubeletNotReady)".into())
        );
        assert_eq!(
            node_ready(None),
            Check::Waiting("the Node is not registered".into())
        );
    }

    #[test]
    fn crds_are_ready_once_established() {
        let crd = |conditions: serde_json::Value| -> CustomResourceDefinition {
            from(json!({"metadata": {"name": "widgets.example.com"},
                "spec": {"group": "example.com", "names": {"kind": "Widget", "plural": "widgets"}, "scope": "Namespaced", "versions": []},
                "status": {"conditions": conditions}}))
        };
        assert_eq!(
            crd_established(Some(&crd(
                json!([{"type": "Established", "status": "True"}])
            ))),
            Check::Met
        );
        assert_eq!(
            crd_established(Some(&crd(
                json!([{"type": "NamesAccepted", "status": "True"}])
            ))),
            Check::Waiting("the CustomResourceDefinition is not established yet".into())
        );
    }
}

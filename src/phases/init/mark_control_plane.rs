//! `init phase mark-control-plane`: the control-plane labels on this node's Node object, and its taints
//! (kubeadm's `node-role.kubernetes.io/control-plane:NoSchedule` unless `--schedule-on-control-plane`
//! or `nodeRegistration.taints` says otherwise). Waits for the kubelet to register the Node. A
//! control-plane join marks its node with the same code ([`mark_node`]).

use k8s_openapi::api::core::v1::{Node, NodeSpec, Taint};

use super::InitData;
use super::api;
use crate::cluster::{Check, Gateway, Patch};
use crate::output::Ui;
use crate::workflow::Phase;

pub fn phase() -> Phase<InitData> {
    Phase::leaf("mark-control-plane", "Mark a node as a control-plane", mark)
}

fn taint_text(t: &Taint) -> String {
    match t.value.as_deref() {
        Some(v) if !v.is_empty() => format!("{}={v}:{}", t.key, t.effect),
        _ => format!("{}:{}", t.key, t.effect),
    }
}

fn mark(data: &mut InitData) -> anyhow::Result<()> {
    let gateway = api::gateway(data)?;
    mark_node(data.host.ui(), &gateway, &data.model.node)
}

/// Labels and taints `node`'s Node object once its kubelet registered it.
pub fn mark_node(ui: &Ui, gateway: &Gateway, node: &crate::model::NodeSpec) -> anyhow::Result<()> {
    let labels = &node.labels;
    let taints: Vec<Taint> = node
        .taints
        .iter()
        .map(|t| Taint {
            key: t.key.clone(),
            value: t.value.clone(),
            effect: t.effect.clone(),
            time_added: None,
        })
        .collect();
    ui.line(format!(
        "[mark-control-plane] Marking the node {} as control-plane by adding the labels: [{}]",
        node.name,
        labels.keys().cloned().collect::<Vec<_>>().join(" ")
    ));
    if !taints.is_empty() {
        ui.line(format!(
            "[mark-control-plane] Marking the node {} as control-plane by adding the taints [{}]",
            node.name,
            taints.iter().map(taint_text).collect::<Vec<_>>().join(" ")
        ));
    }
    let timeout = node.timeouts.kubernetes_api_call.0;
    let current = gateway.wait_for::<Node, _>(
        None,
        &node.name,
        &format!("Node {:?} to be registered by its kubelet", node.name),
        timeout,
        |n: Option<&Node>| match n {
            Some(_) => Check::Met,
            None => Check::Waiting("no such Node yet".into()),
        },
    )?;
    let mut all_taints = current
        .as_ref()
        .and_then(|n| n.spec.as_ref())
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    for t in taints {
        if !all_taints
            .iter()
            .any(|have| have.key == t.key && have.effect == t.effect)
        {
            all_taints.push(t);
        }
    }
    let change = Node {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            labels: Some(labels.clone()),
            ..Default::default()
        },
        spec: Some(NodeSpec {
            taints: (!all_taints.is_empty()).then_some(all_taints),
            ..Default::default()
        }),
        status: None,
    };
    gateway.patch::<Node>(
        None,
        &node.name,
        &Patch::Merge(serde_json::to_value(&change)?),
    )?;
    Ok(())
}

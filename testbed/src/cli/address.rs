//! How the command line names nodes and files: `NODE` or `CLUSTER/NODE` (the cluster otherwise comes
//! from `--name`, default `kubestrap`), and `cp`'s `[CLUSTER/]NODE:/PATH` against local paths.

use std::path::PathBuf;

use super::error::{CliResult, usage};
use crate::driver::identity::check_name;

/// The cluster a command acts on when neither `--name` nor `CLUSTER/NODE` names one.
pub const DEFAULT_CLUSTER: &str = "kubestrap";

/// A node as typed: `node1` or `demo/node1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRef {
    pub cluster: Option<String>,
    pub node: String,
}

/// Node names are DNS labels (`node1`, …).
fn check_node_name(node: &str) -> Result<(), String> {
    let ok = !node.is_empty()
        && node.len() <= 63
        && node
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !node.starts_with('-')
        && !node.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{node:?} is not a node name (node names are like node1; CLUSTER/NODE names another cluster's node)"
        ))
    }
}

/// Parses `NODE` or `CLUSTER/NODE`.
pub fn parse_node(text: &str) -> Result<NodeRef, String> {
    match text.split_once('/') {
        Some((cluster, node)) => {
            check_name(cluster)?;
            check_node_name(node)?;
            Ok(NodeRef {
                cluster: Some(cluster.to_string()),
                node: node.to_string(),
            })
        }
        None => {
            check_node_name(text)?;
            Ok(NodeRef {
                cluster: None,
                node: text.to_string(),
            })
        }
    }
}

impl NodeRef {
    /// The cluster this node is in: its own `CLUSTER/` part, `--name`, or the default. Naming two
    /// different clusters is an error.
    pub fn cluster<'a>(&'a self, flag: Option<&'a str>) -> CliResult<&'a str> {
        match (&self.cluster, flag) {
            (Some(own), Some(flag)) if own != flag => Err(usage(format!(
                "node {own}/{} is in cluster {own:?} but --name says {flag:?}: give one of them",
                self.node
            ))),
            (Some(own), _) => Ok(own),
            (None, Some(flag)) => Ok(flag),
            (None, None) => Ok(DEFAULT_CLUSTER),
        }
    }
}

/// One side of `cp`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Local(PathBuf),
    /// A node and an absolute path on it.
    Node(NodeRef, String),
}

/// `[CLUSTER/]NODE:/PATH` is a node's file; anything else is a local path (write `./a:b` for a
/// local file whose name has a colon).
pub fn parse_endpoint(text: &str) -> CliResult<Endpoint> {
    if let Some((node, path)) = text.split_once(':')
        && let Ok(node) = parse_node(node)
    {
        if !path.starts_with('/') {
            return Err(usage(format!(
                "{text:?}: the path on the node must be absolute (like {}:/root/file)",
                text.split(':').next().unwrap_or_default()
            )));
        }
        return Ok(Endpoint::Node(node, path.to_string()));
    }
    if text.is_empty() {
        return Err(usage("cp: an empty path"));
    }
    Ok(Endpoint::Local(PathBuf::from(text)))
}

/// `cp`'s two sides: exactly one of them on a node.
pub fn parse_copy(source: &str, destination: &str) -> CliResult<(Endpoint, Endpoint)> {
    let (from, to) = (parse_endpoint(source)?, parse_endpoint(destination)?);
    match (&from, &to) {
        (Endpoint::Local(_), Endpoint::Local(_)) => Err(usage(format!(
            "cp {source} {destination}: one side must be a node's file, as NODE:/PATH"
        ))),
        (Endpoint::Node(..), Endpoint::Node(..)) => Err(usage(format!(
            "cp {source} {destination}: copy between two nodes through a local file"
        ))),
        _ => Ok((from, to)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(cluster: Option<&str>, node: &str) -> NodeRef {
        NodeRef {
            cluster: cluster.map(str::to_string),
            node: node.to_string(),
        }
    }

    #[test]
    fn nodes_are_named_alone_or_with_their_cluster() {
        assert_eq!(parse_node("node1"), Ok(node(None, "node1")));
        assert_eq!(parse_node("demo/node2"), Ok(node(Some("demo"), "node2")));
        for bad in [
            "",
            "Node1",
            "demo/",
            "/node1",
            "a/b/c",
            "Demo/node1",
            "node_1",
        ] {
            assert!(parse_node(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_cluster_comes_from_the_node_then_name_then_the_default() {
        assert_eq!(node(None, "node1").cluster(None).unwrap(), "kubestrap");
        assert_eq!(node(None, "node1").cluster(Some("x")).unwrap(), "x");
        assert_eq!(node(Some("x"), "node1").cluster(None).unwrap(), "x");
        assert_eq!(node(Some("x"), "node1").cluster(Some("x")).unwrap(), "x");
        let err = node(Some("x"), "node1").cluster(Some("y")).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("--name says \"y\""), "{err}");
    }

    #[test]
    fn cp_takes_exactly_one_node_side_with_an_absolute_path() {
        let (from, to) = parse_copy("./a.yaml", "node1:/root/a.yaml").unwrap();
        assert_eq!(from, Endpoint::Local("./a.yaml".into()));
        assert_eq!(
            to,
            Endpoint::Node(node(None, "node1"), "/root/a.yaml".into())
        );
        let (from, to) = parse_copy("demo/node2:/etc/kubernetes/admin.conf", "/tmp/").unwrap();
        assert_eq!(
            from,
            Endpoint::Node(
                node(Some("demo"), "node2"),
                "/etc/kubernetes/admin.conf".into()
            )
        );
        assert_eq!(to, Endpoint::Local("/tmp/".into()));
        // A colon in a local name: anything that is not NODE: is local.
        assert_eq!(
            parse_endpoint("./a:b").unwrap(),
            Endpoint::Local("./a:b".into())
        );
        for (src, dst, says) in [
            ("a", "b", "one side must be a node's file"),
            ("node1:/a", "node2:/b", "between two nodes"),
            ("a", "node1:root/a", "must be absolute"),
            ("a", "node1:", "must be absolute"),
        ] {
            let err = parse_copy(src, dst).unwrap_err();
            assert_eq!(err.exit_code(), 2);
            assert!(err.to_string().contains(says), "{src} {dst}: {err}");
        }
    }
}

//! Node IPAM as the real range allocator does it: with --allocate-node-cidrs, each cluster CIDR
//! of --cluster-cidr (one, or one per family for dual-stack) is cut into node subnets of
//! --node-cidr-mask-size(-ipv4/-ipv6); every Node without podCIDRs gets the next free subnet of
//! each (sequentially, wrapping around), the subnets overlapping --service-cluster-ip-range are
//! never handed out, existing podCIDRs are occupied at start-up and released when their Node is
//! deleted. The flag checks, their order and wording are startNodeIpamController's,
//! NewNodeIpamController's and the CIDR set's, and fail start-up as they do.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use ipnet::IpNet;
use serde_json::{Value, json};

use super::informer::{Informer, Informers, uid_of};
use super::runner::Reconciler;
use crate::common::client::{ApiClient, PatchType};
use crate::common::events::{self, EventType};
use crate::common::flags::Flags;
use crate::logf;

pub const NAME: &str = "node-ipam-controller";
const DEFAULT_MASK_V4: i64 = 24;
const DEFAULT_MASK_V6: i64 = 64;
/// The CIDR set's bitmap is limited to 2^16 node subnets for IPv6 (clusterSubnetMaxDiff).
const MAX_DIFF_V6: u8 = 16;

/// netutils.ParseCIDRSloppy: a CIDR, its address masked to the network.
fn parse_cidr(text: &str) -> Option<IpNet> {
    text.parse::<IpNet>().ok().map(|n| n.trunc())
}

fn is_v6(net: &IpNet) -> bool {
    matches!(net, IpNet::V6(_))
}

/// processCIDRs + validateCIDRs of --cluster-cidr.
pub fn cluster_cidrs(list: &str) -> Result<Vec<IpNet>, String> {
    let mut cidrs = Vec::new();
    for (i, text) in list.trim().split(',').enumerate() {
        match parse_cidr(text) {
            Some(c) => cidrs.push(c),
            None => {
                return Err(format!(
                    "invalid CIDR[{i}]: <nil> (invalid CIDR address: {text})"
                ));
            }
        }
    }
    let dual = cidrs.iter().any(is_v6) && cidrs.iter().any(|c| !is_v6(c));
    if cidrs.len() > 1 && !dual {
        return Err(format!(
            "len of ClusterCIDRs=={} and they are not configured as dual stack (at least one from each IPFamily",
            cidrs.len()
        ));
    }
    if cidrs.len() > 2 {
        return Err(format!(
            "length of clusterCIDRs is:{} more than max allowed of 2",
            cidrs.len()
        ));
    }
    Ok(cidrs)
}

/// The node mask flags (0 when unset) as setNodeCIDRMaskSizes resolves them per cluster CIDR.
pub fn mask_sizes(
    cidrs: &[IpNet],
    mask: i64,
    mask_v4: i64,
    mask_v6: i64,
) -> Result<Vec<i64>, String> {
    let sized = |v4: i64, v6: i64| {
        cidrs
            .iter()
            .map(|c| if is_v6(c) { v6 } else { v4 })
            .collect()
    };
    if cidrs.len() > 1 {
        if mask != 0 {
            return Err(
                "usage of --node-cidr-mask-size is not allowed with dual-stack clusters".into(),
            );
        }
        let v4 = if mask_v4 != 0 {
            mask_v4
        } else {
            DEFAULT_MASK_V4
        };
        let v6 = if mask_v6 != 0 {
            mask_v6
        } else {
            DEFAULT_MASK_V6
        };
        return Ok(sized(v4, v6));
    }
    let single_v6 = cidrs.first().is_some_and(is_v6);
    if mask != 0 {
        if mask_v4 != 0 || mask_v6 != 0 {
            return Err("usage of --node-cidr-mask-size-ipv4 and --node-cidr-mask-size-ipv6 is not allowed if --node-cidr-mask-size is set. For dual-stack clusters please unset it and use IPFamily specific flags".into());
        }
        return Ok(sized(mask, mask));
    }
    let mut v4 = DEFAULT_MASK_V4;
    let mut v6 = DEFAULT_MASK_V6;
    if mask_v4 != 0 {
        if single_v6 {
            return Err("usage of --node-cidr-mask-size-ipv4 is not allowed for a single-stack IPv6 cluster".into());
        }
        v4 = mask_v4;
    }
    if mask_v6 != 0 {
        if !single_v6 {
            return Err("usage of --node-cidr-mask-size-ipv6 is not allowed for a single-stack IPv4 cluster".into());
        }
        v6 = mask_v6;
    }
    Ok(sized(v4, v6))
}

/// One cluster CIDR cut into node subnets (cidrset.CidrSet).
#[derive(Debug, Clone)]
pub struct CidrSet {
    cluster: IpNet,
    node_mask: u8,
    max: u64,
    used: BTreeSet<u64>,
    next: u64,
}

fn to_int(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

impl CidrSet {
    /// NewCIDRSet (the node mask already checked against the cluster mask).
    pub fn new(cluster: IpNet, node_mask: u8) -> Result<CidrSet, String> {
        let bits = cluster.max_prefix_len();
        if node_mask > bits {
            return Err(format!(
                "node CIDR mask size {node_mask} is longer than the {bits}-bit addresses of cluster CIDR {cluster}"
            ));
        }
        let Some(diff) = node_mask.checked_sub(cluster.prefix_len()) else {
            return Err("Controller: Invalid --cluster-cidr, mask size of cluster CIDR must be less than or equal to --node-cidr-mask-size configured for CIDR family".into());
        };
        if is_v6(&cluster) && diff > MAX_DIFF_V6 {
            return Err("New CIDR set failed; the node CIDR size is too big".into());
        }
        Ok(CidrSet {
            cluster,
            node_mask,
            max: 1u64 << diff,
            used: BTreeSet::new(),
            next: 0,
        })
    }

    fn shift(&self) -> u8 {
        self.cluster.max_prefix_len() - self.node_mask
    }

    fn block(&self, index: u64) -> IpNet {
        let base = to_int(self.cluster.network());
        let value = base + (u128::from(index) << self.shift());
        let addr = match self.cluster {
            IpNet::V4(_) => IpAddr::from(std::net::Ipv4Addr::from(value as u32)),
            IpNet::V6(_) => IpAddr::from(std::net::Ipv6Addr::from(value)),
        };
        IpNet::new(addr, self.node_mask).unwrap_or(self.cluster)
    }

    /// AllocateNext: the next free subnet from where the last allocation stopped.
    pub fn allocate_next(&mut self) -> Result<IpNet, String> {
        if self.used.len() as u64 >= self.max {
            return Err(
                "CIDR allocation failed; there are no remaining CIDRs left to allocate in the accepted range".into(),
            );
        }
        let mut candidate = self.next;
        while self.used.contains(&candidate) {
            candidate = (candidate + 1) % self.max;
        }
        self.next = (candidate + 1) % self.max;
        self.used.insert(candidate);
        Ok(self.block(candidate))
    }

    /// getBeginningAndEndIndices: the node subnets a CIDR covers.
    fn indices(&self, cidr: &IpNet) -> Result<(u64, u64), String> {
        let overlaps = is_v6(cidr) == is_v6(&self.cluster)
            && (self.cluster.contains(&cidr.network()) || cidr.contains(&self.cluster.network()));
        if !overlaps {
            return Err(format!(
                "cidr {cidr} is out the range of cluster cidr {}",
                self.cluster
            ));
        }
        if self.cluster.prefix_len() >= cidr.prefix_len() {
            return Ok((0, self.max - 1));
        }
        let base = to_int(self.cluster.network());
        let index = |ip: IpAddr| ((to_int(ip) - base) >> self.shift()) as u64;
        Ok((index(cidr.network()), index(cidr.broadcast())))
    }

    /// Occupy: marks the subnets a CIDR covers as used.
    pub fn occupy(&mut self, cidr: &IpNet) -> Result<(), String> {
        let (begin, end) = self.indices(cidr)?;
        self.used.extend(begin..=end);
        Ok(())
    }

    /// Release: frees the subnets a CIDR covers.
    pub fn release(&mut self, cidr: &IpNet) -> Result<(), String> {
        let (begin, end) = self.indices(cidr)?;
        for i in begin..=end {
            self.used.remove(&i);
        }
        Ok(())
    }
}

/// The allocator's configuration, checked at controller start.
#[derive(Debug, Clone)]
pub struct Config {
    pub sets: Vec<CidrSet>,
}

/// startNodeIpamController's and NewNodeIpamController's checks; Ok(None) when
/// --allocate-node-cidrs is off (the controller does not run).
pub fn config(flags: &Flags) -> Result<Option<Config>, String> {
    if !flags
        .bool("allocate-node-cidrs", false)
        .map_err(|e| e.to_string())?
    {
        return Ok(None);
    }
    let allocator = flags.string("cidr-allocator-type", "RangeAllocator");
    if allocator == "CloudAllocator" {
        return Err(
            "--cidr-allocator-type is set to 'CloudAllocator' but cloud provider is not configured"
                .into(),
        );
    }
    let cidrs = cluster_cidrs(flags.get("cluster-cidr").unwrap_or_default())?;
    let services: Vec<IpNet> = flags
        .get("service-cluster-ip-range")
        .unwrap_or_default()
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .filter_map(|s| match parse_cidr(s.trim()) {
            Some(c) => Some(c),
            None => {
                logf!(
                    super::COMPONENT,
                    "Warning: unsuccessful parsing of service CIDR {s:?}"
                );
                None
            }
        })
        .collect();
    if services.len() == 2 && is_v6(&services[0]) == is_v6(&services[1]) {
        return Err(
            "serviceCIDR and secondaryServiceCIDR are not dualstack (from different IPfamiles)"
                .into(),
        );
    }
    let int = |name: &str| flags.int(name, 0).map_err(|e| e.to_string());
    let masks = mask_sizes(
        &cidrs,
        int("node-cidr-mask-size")?,
        int("node-cidr-mask-size-ipv4")?,
        int("node-cidr-mask-size-ipv6")?,
    )?;
    for (cidr, mask) in cidrs.iter().zip(&masks) {
        if i64::from(cidr.prefix_len()) > *mask {
            return Err("Controller: Invalid --cluster-cidr, mask size of cluster CIDR must be less than or equal to --node-cidr-mask-size configured for CIDR family".into());
        }
    }
    if allocator != "RangeAllocator" {
        return Err(format!("invalid CIDR allocator type: {allocator}"));
    }
    let mut sets = Vec::new();
    for (cidr, mask) in cidrs.iter().zip(&masks) {
        let mask = u8::try_from(*mask)
            .map_err(|_| format!("node CIDR mask size {mask} is out of range"))?;
        let mut set = CidrSet::new(*cidr, mask)?;
        for service in &services {
            // filterOutServiceRange: service addresses are never given to nodes.
            let _ = set.occupy(service);
        }
        sets.push(set);
    }
    Ok(Some(Config { sets }))
}

fn pod_cidrs(node: &Value) -> Vec<String> {
    node["spec"]["podCIDRs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c.as_str().map(str::to_string))
        .collect()
}

/// Nodes (name → uid) this controller patched whose cached copy does not show the podCIDRs yet: a
/// reconcile in between must not hand them a second subnet (the cache lags the write).
#[derive(Debug, Default)]
struct Patched(BTreeMap<String, String>);

impl Patched {
    fn record(&mut self, name: &str, uid: &str) {
        self.0.insert(name.to_string(), uid.to_string());
    }

    /// The cache shows the node's podCIDRs (or the node is gone).
    fn seen(&mut self, name: &str) {
        self.0.remove(name);
    }

    /// Whether a node the cache shows without podCIDRs was patched already (wait for the cache). A
    /// node of that name made again since (another uid) is a new node.
    fn awaits_cache(&mut self, name: &str, uid: &str) -> bool {
        match self.0.get(name) {
            Some(patched) if patched == uid => true,
            Some(_) => {
                self.0.remove(name);
                false
            }
            None => false,
        }
    }
}

pub struct NodeIpamController {
    nodes: Arc<Informer>,
    sets: Vec<CidrSet>,
    /// What each node holds in the sets.
    held: BTreeMap<String, Vec<IpNet>>,
    /// podCIDRs that could not be occupied (reported once, until they change).
    refused: BTreeMap<String, Vec<String>>,
    patched: Patched,
    started: bool,
}

impl NodeIpamController {
    pub fn new(informers: &Informers, config: Config) -> NodeIpamController {
        NodeIpamController {
            nodes: informers.nodes(),
            sets: config.sets,
            held: BTreeMap::new(),
            refused: BTreeMap::new(),
            patched: Patched::default(),
            started: false,
        }
    }

    /// occupyCIDRs: a node's podCIDRs marked used, index by index.
    fn occupy(&mut self, name: &str, cidrs: &[String]) -> Result<(), String> {
        let mut parsed = Vec::new();
        for (i, text) in cidrs.iter().enumerate() {
            let cidr = parse_cidr(text)
                .ok_or_else(|| format!("failed to parse node {name}, CIDR {text}"))?;
            let set = self.sets.get_mut(i).ok_or_else(|| {
                format!("node:{name} has an allocated cidr: {text} at index:{i} that does not exist in cluster cidrs configuration")
            })?;
            set.occupy(&cidr).map_err(|e| {
                format!(
                    "failed to mark cidr[{cidr}] at idx [{i}] as occupied for node: {name}: {e}"
                )
            })?;
            parsed.push(cidr);
        }
        self.held.insert(name.to_string(), parsed);
        Ok(())
    }

    fn release(&mut self, name: &str) {
        for (i, cidr) in self
            .held
            .remove(name)
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            if let Some(set) = self.sets.get_mut(i) {
                let _ = set.release(cidr);
            }
        }
    }

    /// One subnet from every cluster CIDR for a node, patched onto it as podCIDR/podCIDRs.
    async fn allocate(&mut self, client: &ApiClient, node: &Value) -> Result<()> {
        let name = node["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let mut allocated = Vec::new();
        for i in 0..self.sets.len() {
            match self.sets[i].allocate_next() {
                Ok(c) => allocated.push(c),
                Err(e) => {
                    for (j, c) in allocated.iter().enumerate() {
                        let _ = self.sets[j].release(c);
                    }
                    events::record(
                        client,
                        "cidrAllocator",
                        node,
                        EventType::Normal,
                        "CIDRNotAvailable",
                        &format!("Node {name} status is now: CIDRNotAvailable"),
                    )
                    .await;
                    anyhow::bail!("failed to allocate cidr from cluster cidr at idx:{i}: {e}");
                }
            }
        }
        let texts: Vec<String> = allocated.iter().map(ToString::to_string).collect();
        let patch = json!({"spec": {"podCIDR": texts[0], "podCIDRs": texts}});
        match client
            .patch(
                &format!("/api/v1/nodes/{name}"),
                PatchType::Strategic,
                &patch,
            )
            .await
        {
            Ok(_) => {
                logf!(super::COMPONENT, "Set node {name} PodCIDR to {texts:?}");
                self.patched.record(&name, uid_of(node));
                self.held.insert(name, allocated);
                Ok(())
            }
            Err(e) => {
                for (j, c) in allocated.iter().enumerate() {
                    let _ = self.sets[j].release(c);
                }
                Err(e.into())
            }
        }
    }
}

impl Reconciler for NodeIpamController {
    fn name(&self) -> &'static str {
        NAME
    }

    fn informers(&self) -> Vec<Arc<Informer>> {
        vec![self.nodes.clone()]
    }

    async fn reconcile(&mut self, client: &ApiClient) -> Result<Option<Duration>> {
        let nodes = self.nodes.list();
        if !self.started {
            for node in &nodes {
                let name = node["metadata"]["name"].as_str().unwrap_or_default();
                let cidrs = pod_cidrs(node);
                if cidrs.is_empty() {
                    continue;
                }
                if let Err(e) = self.occupy(name, &cidrs) {
                    // NewCIDRRangeAllocator fails, and with it the controller manager.
                    super::fail_start(NAME, &e);
                }
            }
            self.started = true;
        }
        let present: BTreeSet<String> = nodes
            .iter()
            .filter_map(|n| n["metadata"]["name"].as_str().map(str::to_string))
            .collect();
        let gone: Vec<String> = self
            .held
            .keys()
            .filter(|n| !present.contains(*n))
            .cloned()
            .collect();
        self.refused.retain(|n, _| present.contains(n));
        self.patched.0.retain(|n, _| present.contains(n));
        for name in gone {
            self.release(&name);
            logf!(
                super::COMPONENT,
                "Released the pod CIDRs of deleted node {name}"
            );
        }
        let mut retry = None;
        for node in &nodes {
            let name = node["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let cidrs = pod_cidrs(node);
            if !cidrs.is_empty() {
                self.patched.seen(&name);
                let held: Vec<String> = self
                    .held
                    .get(&name)
                    .map(|h| h.iter().map(ToString::to_string).collect())
                    .unwrap_or_default();
                if held != cidrs && self.refused.get(&name) != Some(&cidrs) {
                    self.release(&name);
                    self.refused.remove(&name);
                    if let Err(e) = self.occupy(&name, &cidrs) {
                        logf!(
                            super::COMPONENT,
                            "Error occupying the pod CIDRs of node {name}: {e}"
                        );
                        self.refused.insert(name.clone(), cidrs);
                    }
                }
                continue;
            }
            if !node["metadata"]["deletionTimestamp"].is_null() {
                continue;
            }
            if self.patched.awaits_cache(&name, uid_of(node)) {
                continue;
            }
            // podCIDRs are never unset: a node without them is a new one, and what an earlier node
            // of that name held (deleted and made again between two reconciles) is free again.
            self.release(&name);
            if let Err(e) = self.allocate(client, node).await {
                logf!(
                    super::COMPONENT,
                    "Error allocating a pod CIDR to node {name}: {e:#}"
                );
                retry = Some(Duration::from_secs(5));
            }
        }
        Ok(retry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn cluster_cidrs_are_checked_as_upstream() {
        assert_eq!(
            cluster_cidrs("10.244.0.0/16").unwrap(),
            vec![net("10.244.0.0/16")]
        );
        assert_eq!(
            cluster_cidrs("10.244.3.0/16").unwrap(),
            vec![net("10.244.0.0/16")]
        );
        assert_eq!(
            cluster_cidrs("10.244.0.0/33").unwrap_err(),
            "invalid CIDR[0]: <nil> (invalid CIDR address: 10.244.0.0/33)"
        );
        assert_eq!(
            cluster_cidrs("").unwrap_err(),
            "invalid CIDR[0]: <nil> (invalid CIDR address: )"
        );
        assert_eq!(
            cluster_cidrs("10.244.0.0/16,10.245.0.0/16").unwrap_err(),
            "len of ClusterCIDRs==2 and they are not configured as dual stack (at least one from each IPFamily"
        );
        assert_eq!(
            cluster_cidrs("10.244.0.0/16,fd00::/56,10.245.0.0/16").unwrap_err(),
            "length of clusterCIDRs is:3 more than max allowed of 2"
        );
        assert_eq!(
            cluster_cidrs("10.244.0.0/16,fd00:10:244::/56")
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn mask_sizes_follow_set_node_cidr_mask_sizes() {
        let v4 = [net("10.244.0.0/16")];
        let dual = [net("10.244.0.0/16"), net("fd00::/56")];
        let v6 = [net("fd00::/56")];
        assert_eq!(mask_sizes(&v4, 0, 0, 0).unwrap(), vec![24]);
        assert_eq!(mask_sizes(&v4, 26, 0, 0).unwrap(), vec![26]);
        assert_eq!(mask_sizes(&v4, 0, 25, 0).unwrap(), vec![25]);
        assert_eq!(mask_sizes(&dual, 0, 0, 0).unwrap(), vec![24, 64]);
        assert_eq!(mask_sizes(&dual, 0, 26, 66).unwrap(), vec![26, 66]);
        assert_eq!(
            mask_sizes(&dual, 24, 0, 0).unwrap_err(),
            "usage of --node-cidr-mask-size is not allowed with dual-stack clusters"
        );
        assert!(mask_sizes(&v4, 24, 24, 0).unwrap_err().starts_with("usage of --node-cidr-mask-size-ipv4 and --node-cidr-mask-size-ipv6 is not allowed if --node-cidr-mask-size is set"));
        assert_eq!(
            mask_sizes(&v4, 0, 0, 64).unwrap_err(),
            "usage of --node-cidr-mask-size-ipv6 is not allowed for a single-stack IPv4 cluster"
        );
        assert_eq!(
            mask_sizes(&v6, 0, 24, 0).unwrap_err(),
            "usage of --node-cidr-mask-size-ipv4 is not allowed for a single-stack IPv6 cluster"
        );
        assert_eq!(mask_sizes(&v6, 0, 0, 0).unwrap(), vec![64]);
    }

    #[test]
    fn subnets_are_handed_out_in_order_and_reused_after_wrapping() {
        let mut set = CidrSet::new(net("10.244.0.0/22"), 24).unwrap();
        let got: Vec<String> = (0..4)
            .map(|_| set.allocate_next().unwrap().to_string())
            .collect();
        assert_eq!(
            got,
            [
                "10.244.0.0/24",
                "10.244.1.0/24",
                "10.244.2.0/24",
                "10.244.3.0/24"
            ]
        );
        assert!(
            set.allocate_next()
                .unwrap_err()
                .starts_with("CIDR allocation failed")
        );
        set.release(&net("10.244.1.0/24")).unwrap();
        assert_eq!(set.allocate_next().unwrap().to_string(), "10.244.1.0/24");
        let mut v6 = CidrSet::new(net("fd00:10:244::/56"), 64).unwrap();
        assert_eq!(v6.allocate_next().unwrap().to_string(), "fd00:10:244::/64");
        assert_eq!(
            v6.allocate_next().unwrap().to_string(),
            "fd00:10:244:1::/64"
        );
        assert_eq!(
            CidrSet::new(net("fd00::/48"), 65).unwrap_err(),
            "New CIDR set failed; the node CIDR size is too big"
        );
    }

    #[test]
    fn occupied_ranges_are_skipped_and_foreign_ones_refused() {
        let mut set = CidrSet::new(net("10.96.0.0/12"), 24).unwrap();
        set.occupy(&net("10.96.0.0/13")).unwrap();
        assert_eq!(set.allocate_next().unwrap().to_string(), "10.104.0.0/24");
        assert_eq!(
            set.occupy(&net("10.1.0.0/24")).unwrap_err(),
            "cidr 10.1.0.0/24 is out the range of cluster cidr 10.96.0.0/12"
        );
        assert!(set.occupy(&net("fd00::/64")).is_err());
    }

    #[test]
    fn a_patched_node_is_not_allocated_again_while_the_cache_lags() {
        let mut patched = Patched::default();
        assert!(!patched.awaits_cache("node3", "u1"));
        patched.record("node3", "u1");
        assert!(patched.awaits_cache("node3", "u1"));
        assert!(
            patched.awaits_cache("node3", "u1"),
            "until the cache shows it"
        );
        patched.seen("node3");
        assert!(!patched.awaits_cache("node3", "u1"));
        patched.record("node3", "u1");
        assert!(!patched.awaits_cache("node3", "u2"), "a node made again");
        assert!(!patched.awaits_cache("node3", "u1"));
    }

    #[test]
    fn flags_fail_start_up_with_the_real_messages() {
        let parse = |args: &[&str]| {
            let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
            super::super::flags::flag_table().parse(&args).unwrap()
        };
        assert!(
            config(&parse(&["--cluster-cidr=10.244.0.0/16"]))
                .unwrap()
                .is_none()
        );
        let bad_mask = config(&parse(&[
            "--allocate-node-cidrs",
            "--cluster-cidr=10.244.0.0/16",
            "--node-cidr-mask-size=8",
        ]));
        assert_eq!(
            bad_mask.unwrap_err(),
            "Controller: Invalid --cluster-cidr, mask size of cluster CIDR must be less than or equal to --node-cidr-mask-size configured for CIDR family"
        );
        let cloud = config(&parse(&[
            "--allocate-node-cidrs=true",
            "--cidr-allocator-type=CloudAllocator",
            "--cluster-cidr=10.244.0.0/16",
        ]));
        assert_eq!(
            cloud.unwrap_err(),
            "--cidr-allocator-type is set to 'CloudAllocator' but cloud provider is not configured"
        );
        let unknown = config(&parse(&[
            "--allocate-node-cidrs=true",
            "--cidr-allocator-type=Magic",
            "--cluster-cidr=10.244.0.0/16",
        ]));
        assert_eq!(unknown.unwrap_err(), "invalid CIDR allocator type: Magic");
        let mut ok = config(&parse(&[
            "--allocate-node-cidrs",
            "--cluster-cidr=10.96.0.0/11",
            "--service-cluster-ip-range=10.96.0.0/12",
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(
            ok.sets[0].allocate_next().unwrap().to_string(),
            "10.112.0.0/24"
        );
    }
}

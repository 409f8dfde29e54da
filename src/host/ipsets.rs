//! ipsets: scan (`ipset list -t`, names and kernel references), attribute by prefix (KUBE-, felix-,
//! cali40/cali60, weave-, kube-router-) and destroy — after the rules that reference them are gone.

use super::attribution::{ipset_rules, owner_of};
use super::command;
use super::inventory::{Found, Kind, Outcome};

/// One set and how many kernel objects (iptables rules, other sets) reference it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpSet {
    pub name: String,
    pub references: u32,
}

/// Parses `ipset list -t` (headers only).
pub fn parse(text: &str) -> Vec<IpSet> {
    let mut sets = Vec::new();
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("Name: ") {
            sets.push(IpSet {
                name: name.trim().to_string(),
                references: 0,
            });
        } else if let Some(refs) = line.strip_prefix("References: ")
            && let Some(last) = sets.last_mut()
        {
            last.references = refs.trim().parse().unwrap_or(0);
        }
    }
    sets
}

/// Every set of this network namespace; none when `ipset` is not installed.
pub fn scan() -> anyhow::Result<Vec<IpSet>> {
    if !command::available("ipset") {
        return Ok(Vec::new());
    }
    Ok(parse(&command::run_ok("ipset", &["list", "-t"])?))
}

pub fn attribute(set: &IpSet) -> Found {
    Found::new(
        Kind::Ipset,
        set.name.clone(),
        owner_of(ipset_rules(), &set.name),
    )
}

pub fn remove(found: &Found) -> Outcome {
    if !found.owner.is_cluster() {
        return found.kept_foreign();
    }
    match command::run("ipset", &["destroy", &found.target], None) {
        Ok(out) if out.success => found.removed(),
        Ok(out) if out.complaint().contains("does not exist") => found.removed(),
        Ok(out) => found.left(
            format!(
                "ipset destroy failed: {} (a rule or set that is not ours still references it)",
                out.complaint()
            ),
            false,
        ),
        Err(e) => found.left(e.to_string(), false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_headers_and_attributes() {
        let text = "Name: KUBE-CLUSTER-IP\nType: hash:ip,port,ip\nRevision: 6\nHeader: family inet hashsize 1024 maxelem 65536\nSize in memory: 200\nReferences: 2\nNumber of entries: 0\n\nName: blocklist\nType: hash:ip\nReferences: 0\n";
        let sets = parse(text);
        assert_eq!(
            sets,
            vec![
                IpSet {
                    name: "KUBE-CLUSTER-IP".into(),
                    references: 2
                },
                IpSet {
                    name: "blocklist".into(),
                    references: 0
                },
            ]
        );
        assert!(attribute(&sets[0]).owner.is_cluster());
        assert!(!attribute(&sets[1]).owner.is_cluster());
        assert!(matches!(remove(&attribute(&sets[1])), Outcome::Kept(_)));
    }
}

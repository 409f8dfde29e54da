//! Netfilter: iptables chains and rules (IPv4 and IPv6, iptables-nft and iptables-legacy) and nft tables.
//! Scan with `*-save`, attribute chains by prefix and rules by jump target or comment (`CNI-` state only
//! when its comment names one of our CNI networks), remove with one `*-restore --noflush` transaction per
//! table: jump rules first, then flush and delete the chains. A whole table is never flushed.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Context;
use serde::Deserialize;

use super::attribution::{
    ClusterScope, chain_rules, comment_rules, match_name, nft_table_rules, owner_of,
};
use super::command;
use super::facts::Facts;
use super::inventory::{Found, Kind, Outcome, Owner};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IpFamily {
    V4,
    V6,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Backend {
    Nft,
    Legacy,
}

/// One iptables flavour: a family and a backend, with its save/restore tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Flavor {
    pub family: IpFamily,
    pub backend: Backend,
}

impl Flavor {
    pub const ALL: [Flavor; 4] = [
        Flavor {
            family: IpFamily::V4,
            backend: Backend::Nft,
        },
        Flavor {
            family: IpFamily::V6,
            backend: Backend::Nft,
        },
        Flavor {
            family: IpFamily::V4,
            backend: Backend::Legacy,
        },
        Flavor {
            family: IpFamily::V6,
            backend: Backend::Legacy,
        },
    ];

    fn tool(self, action: &str) -> String {
        let base = match self.family {
            IpFamily::V4 => "iptables",
            IpFamily::V6 => "ip6tables",
        };
        let backend = match self.backend {
            Backend::Nft => "nft",
            Backend::Legacy => "legacy",
        };
        format!("{base}-{backend}-{action}")
    }

    pub fn save_tool(self) -> String {
        self.tool("save")
    }

    pub fn restore_tool(self) -> String {
        self.tool("restore")
    }

    /// `ipv4/nft`, the prefix of report targets.
    pub fn label(self) -> String {
        let family = match self.family {
            IpFamily::V4 => "ipv4",
            IpFamily::V6 => "ipv6",
        };
        let backend = match self.backend {
            Backend::Nft => "nft",
            Backend::Legacy => "legacy",
        };
        format!("{family}/{backend}")
    }

    /// Whether this flavour has state worth reading. Legacy tables are only read when the kernel already
    /// has some (listing must never be what creates them).
    pub fn present(self, facts: &Facts) -> bool {
        if !command::available(&self.save_tool()) {
            return false;
        }
        match self.backend {
            Backend::Nft => true,
            Backend::Legacy => {
                let names = match self.family {
                    IpFamily::V4 => "net/ip_tables_names",
                    IpFamily::V6 => "net/ip6_tables_names",
                };
                facts.read_proc(names).is_ok_and(|t| !t.trim().is_empty())
            }
        }
    }
}

/// A chain in a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    pub name: String,
    pub builtin: bool,
}

/// A rule as `*-save` prints it, without the leading `-A <chain> `.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub chain: String,
    pub spec: String,
}

impl Rule {
    pub fn line(&self) -> String {
        format!("-A {} {}", self.chain, self.spec)
    }

    /// The chain this rule jumps or goes to.
    pub fn target(&self) -> Option<String> {
        let tokens = tokenize(&self.spec);
        tokens
            .windows(2)
            .find(|w| w[0] == "-j" || w[0] == "-g" || w[0] == "--jump" || w[0] == "--goto")
            .map(|w| w[1].clone())
    }

    /// The rule's `-m comment --comment` text, unquoted.
    pub fn comment(&self) -> Option<String> {
        let tokens = tokenize(&self.spec);
        tokens
            .windows(2)
            .find(|w| w[0] == "--comment")
            .map(|w| w[1].clone())
    }
}

/// One table of one flavour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub flavor: Flavor,
    pub name: String,
    pub chains: Vec<Chain>,
    pub rules: Vec<Rule>,
}

/// Splits an iptables-save rule into words, honouring double quotes and backslash escapes.
pub fn tokenize(spec: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut in_quotes = false;
    let mut started = false;
    let mut chars = spec.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' if in_quotes => {
                if let Some(next) = chars.next() {
                    current.push(next);
                }
            }
            '"' => {
                in_quotes = !in_quotes;
                started = true;
            }
            c if c.is_whitespace() && !in_quotes => {
                if started {
                    out.push(std::mem::take(&mut current));
                    started = false;
                }
            }
            c => {
                current.push(c);
                started = true;
            }
        }
    }
    if started {
        out.push(current);
    }
    out
}

/// Parses `*-save` output.
pub fn parse_save(flavor: Flavor, text: &str) -> Vec<Table> {
    let mut tables = Vec::new();
    let mut current: Option<Table> = None;
    for line in text.lines() {
        let line = line.trim_end();
        if let Some(name) = line.strip_prefix('*') {
            if let Some(t) = current.take() {
                tables.push(t);
            }
            current = Some(Table {
                flavor,
                name: name.to_string(),
                chains: Vec::new(),
                rules: Vec::new(),
            });
        } else if let Some(decl) = line.strip_prefix(':') {
            if let Some(t) = current.as_mut() {
                let mut parts = decl.split_whitespace();
                if let Some(name) = parts.next() {
                    let policy = parts.next().unwrap_or("-");
                    t.chains.push(Chain {
                        name: name.to_string(),
                        builtin: policy != "-",
                    });
                }
            }
        } else if let Some(rest) = line.strip_prefix("-A ") {
            if let Some(t) = current.as_mut() {
                let (chain, spec) = rest.split_once(' ').unwrap_or((rest, ""));
                t.rules.push(Rule {
                    chain: chain.to_string(),
                    spec: spec.to_string(),
                });
            }
        } else if line == "COMMIT"
            && let Some(t) = current.take()
        {
            tables.push(t);
        }
    }
    if let Some(t) = current.take() {
        tables.push(t);
    }
    tables
}

/// Every table of every present flavour.
pub fn scan(facts: &Facts) -> anyhow::Result<Vec<Table>> {
    let mut tables = Vec::new();
    for flavor in Flavor::ALL {
        if !flavor.present(facts) {
            continue;
        }
        let text = command::run_ok(&flavor.save_tool(), &[])
            .with_context(|| format!("reading {} rules", flavor.label()))?;
        tables.extend(parse_save(flavor, &text));
    }
    Ok(tables)
}

/// The CNI network a rule's comment names (`name: "cbr0" id: "…"`, as the bridge and portmap plugins write).
fn cni_network_in_comment(comment: &str) -> Option<&str> {
    let start = comment.find("name: \"")? + "name: \"".len();
    let rest = &comment[start..];
    rest.find('"').map(|end| &rest[..end])
}

/// Owner of a rule by its comment alone.
fn owner_by_comment(comment: &str, scope: &ClusterScope) -> Option<Owner> {
    if let Some(network) = cni_network_in_comment(comment) {
        return Some(scope.cni_network_owner(network));
    }
    match_name(comment_rules(), comment).filter(|o| o.is_cluster())
}

/// What in one table is ours.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TablePlan {
    /// Owned chains (flushed, then deleted), with their owners.
    pub chains: BTreeMap<String, Owner>,
    /// Owned rules in chains that are not ours (deleted one by one), with their owners.
    pub rules: Vec<(Rule, Owner)>,
    /// Chains and rules that are someone else's (kept), for the report.
    pub foreign_chains: Vec<String>,
}

impl TablePlan {
    pub fn is_empty(&self) -> bool {
        self.chains.is_empty() && self.rules.is_empty()
    }
}

/// Attributes the chains and rules of one table.
pub fn attribute(table: &Table, scope: &ClusterScope) -> TablePlan {
    let mut plan = TablePlan::default();
    // CNI- chains: ours only when every jump into them names one of our networks.
    let mut cni_votes: BTreeMap<String, (bool, bool)> = BTreeMap::new();
    for rule in &table.rules {
        if let Some(target) = rule.target()
            && target.starts_with("CNI-")
        {
            let owner = rule.comment().and_then(|c| owner_by_comment(&c, scope));
            let vote = cni_votes.entry(target).or_insert((false, false));
            match owner {
                Some(o) if o.is_cluster() => vote.0 = true,
                _ => vote.1 = true,
            }
        }
    }
    for chain in table.chains.iter().filter(|c| !c.builtin) {
        let owner = if chain.name.starts_with("CNI-") {
            match cni_votes.get(chain.name.as_str()) {
                Some((true, false)) => Some(Owner::Kubernetes),
                _ => None,
            }
        } else {
            Some(owner_of(chain_rules(), &chain.name)).filter(|o| o.is_cluster())
        };
        match owner {
            Some(o) => {
                plan.chains.insert(chain.name.clone(), o);
            }
            None => plan.foreign_chains.push(chain.name.clone()),
        }
    }
    for rule in &table.rules {
        if plan.chains.contains_key(&rule.chain) {
            continue;
        }
        let by_target = rule.target().and_then(|t| plan.chains.get(&t).copied());
        let by_comment = rule
            .comment()
            .and_then(|c| owner_by_comment(&c, scope))
            .filter(|o| o.is_cluster());
        if let Some(owner) = by_target.or(by_comment) {
            plan.rules.push((rule.clone(), owner));
        }
    }
    plan
}

/// The `*-restore --noflush` input that removes a plan's rules and chains from one table.
pub fn restore_script(table: &str, plan: &TablePlan) -> String {
    let mut script = format!("*{table}\n");
    for (rule, _) in &plan.rules {
        script.push_str(&format!("-D {} {}\n", rule.chain, rule.spec));
    }
    for chain in plan.chains.keys() {
        script.push_str(&format!("-F {chain}\n"));
    }
    for chain in plan.chains.keys() {
        script.push_str(&format!("-X {chain}\n"));
    }
    script.push_str("COMMIT\n");
    script
}

fn chain_found(table: &Table, chain: &str, owner: Owner) -> Found {
    Found::new(
        Kind::IptablesChain,
        format!("{}/{}/{chain}", table.flavor.label(), table.name),
        owner,
    )
}

fn rule_found(table: &Table, rule: &Rule, owner: Owner) -> Found {
    Found::new(
        Kind::IptablesRule,
        format!("{}/{}/{}", table.flavor.label(), table.name, rule.line()),
        owner,
    )
}

/// Everything a table's plan would remove, as report items (for dry runs, preflight and verify).
pub fn planned(table: &Table, plan: &TablePlan) -> Vec<Found> {
    let mut out: Vec<Found> = plan
        .rules
        .iter()
        .map(|(r, o)| rule_found(table, r, *o))
        .collect();
    out.extend(plan.chains.iter().map(|(c, o)| chain_found(table, c, *o)));
    out
}

fn restore(flavor: Flavor, script: &str) -> Result<(), String> {
    match command::run(&flavor.restore_tool(), &["--noflush"], Some(script)) {
        Ok(out) if out.success => Ok(()),
        Ok(out) => Err(out.complaint()),
        Err(e) => Err(e.to_string()),
    }
}

/// Removes a table's plan: one transaction; when it fails, each step alone, so that what fails is named.
pub fn remove(table: &Table, plan: &TablePlan) -> Vec<Outcome> {
    if plan.is_empty() {
        return Vec::new();
    }
    if restore(table.flavor, &restore_script(&table.name, plan)).is_ok() {
        return planned(table, plan).iter().map(Found::removed).collect();
    }
    let mut outcomes = Vec::new();
    let step = |line: String| restore(table.flavor, &format!("*{}\n{line}\nCOMMIT\n", table.name));
    for (rule, owner) in &plan.rules {
        let found = rule_found(table, rule, *owner);
        outcomes.push(match step(format!("-D {} {}", rule.chain, rule.spec)) {
            Ok(()) => found.removed(),
            Err(why) => found.left(format!("deleting the rule failed: {why}"), false),
        });
    }
    let mut flushed = BTreeSet::new();
    for chain in plan.chains.keys() {
        if step(format!("-F {chain}")).is_ok() {
            flushed.insert(chain.clone());
        }
    }
    for (chain, owner) in &plan.chains {
        let found = chain_found(table, chain, *owner);
        outcomes.push(match step(format!("-X {chain}")) {
            Ok(()) => found.removed(),
            Err(why) if flushed.contains(chain) => {
                found.left(format!("deleting the chain failed (a rule that is not ours may still jump to it): {why}"), false)
            }
            Err(why) => found.left(format!("flushing the chain failed: {why}"), false),
        });
    }
    outcomes
}

/// An nft table.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct NftTable {
    pub family: String,
    pub name: String,
}

#[derive(Deserialize)]
struct NftDump {
    nftables: Vec<serde_json::Value>,
}

/// Parses `nft -j list tables`.
pub fn parse_nft_tables(json: &str) -> anyhow::Result<Vec<NftTable>> {
    let dump: NftDump = serde_json::from_str(json).context("parsing `nft -j list tables`")?;
    Ok(dump
        .nftables
        .iter()
        .filter_map(|entry| {
            let t = entry.get("table")?;
            Some(NftTable {
                family: t.get("family")?.as_str()?.to_string(),
                name: t.get("name")?.as_str()?.to_string(),
            })
        })
        .collect())
}

/// Every nft table; none when the `nft` tool is not installed.
pub fn scan_nft() -> anyhow::Result<Vec<NftTable>> {
    if !command::available("nft") {
        return Ok(Vec::new());
    }
    parse_nft_tables(&command::run_ok("nft", &["-j", "list", "tables"])?)
}

/// Owner of an nft table: kube-proxy's and the addons' tables by name; iptables-nft's own tables
/// (filter, nat, …) are handled rule by rule above and never deleted whole.
pub fn attribute_nft(table: &NftTable) -> Found {
    Found::new(
        Kind::NftTable,
        format!("{} {}", table.family, table.name),
        owner_of(nft_table_rules(), &table.name),
    )
}

pub fn remove_nft(table: &NftTable, found: &Found) -> Outcome {
    if !found.owner.is_cluster() {
        return found.kept_foreign();
    }
    match command::run(
        "nft",
        &["delete", "table", &table.family, &table.name],
        None,
    ) {
        Ok(out) if out.success => found.removed(),
        Ok(out) => found.left(
            format!("nft delete table failed: {}", out.complaint()),
            false,
        ),
        Err(e) => found.left(e.to_string(), false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V4: Flavor = Flavor {
        family: IpFamily::V4,
        backend: Backend::Nft,
    };

    const SAVE: &str = r#"# Generated by iptables-nft-save v1.8.9 (nf_tables)
*nat
:PREROUTING ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:CNI-0a1b2c - [0:0]
:CNI-podman1 - [0:0]
:KUBE-SERVICES - [0:0]
:USER-NAT - [0:0]
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A POSTROUTING -s 10.244.0.2/32 -m comment --comment "name: \"cbr0\" id: \"abc\"" -j CNI-0a1b2c
-A POSTROUTING -s 10.88.0.2/32 -m comment --comment "name: \"podman\" id: \"def\"" -j CNI-podman1
-A POSTROUTING -s 10.244.0.0/16 -m comment --comment "flanneld masq" -j MASQUERADE
-A POSTROUTING -j USER-NAT
-A CNI-0a1b2c -d 10.244.0.0/24 -j ACCEPT
-A KUBE-SERVICES -j RETURN
-A USER-NAT -j RETURN
COMMIT
*filter
:INPUT ACCEPT [0:0]
:cali-INPUT - [0:0]
-A INPUT -m comment --comment "cali:Cz_u1IQiXIMmKD4c" -j cali-INPUT
-A INPUT -p tcp --dport 22 -j ACCEPT
COMMIT
"#;

    #[test]
    fn tokenizer_handles_escaped_quotes() {
        let t = tokenize(r#"-m comment --comment "name: \"cbr0\" id: \"abc\"" -j CNI-x"#);
        assert_eq!(
            t,
            vec![
                "-m",
                "comment",
                "--comment",
                "name: \"cbr0\" id: \"abc\"",
                "-j",
                "CNI-x"
            ]
        );
        assert_eq!(tokenize("-m comment --comment \"\" -j X")[3], "");
    }

    #[test]
    fn attributes_by_prefix_jump_and_comment() {
        let tables = parse_save(V4, SAVE);
        assert_eq!(tables.len(), 2);
        let scope = ClusterScope::with_addon_networks();
        let nat = attribute(&tables[0], &scope);
        let chains: Vec<&String> = nat.chains.keys().collect();
        assert_eq!(chains, vec!["CNI-0a1b2c", "KUBE-SERVICES"]);
        assert_eq!(nat.foreign_chains, vec!["CNI-podman1", "USER-NAT"]);
        let rules: Vec<String> = nat.rules.iter().map(|(r, _)| r.line()).collect();
        assert_eq!(rules.len(), 3, "{rules:?}");
        assert!(rules[0].contains("KUBE-SERVICES"));
        assert!(rules[1].contains("CNI-0a1b2c"));
        assert!(rules[2].contains("flanneld masq"));
        let filter = attribute(&tables[1], &scope);
        assert_eq!(filter.chains.len(), 1);
        assert_eq!(filter.rules.len(), 1);
        let script = restore_script("nat", &nat);
        assert!(script.starts_with("*nat\n-D PREROUTING -m comment"));
        assert!(script.ends_with("-X CNI-0a1b2c\n-X KUBE-SERVICES\nCOMMIT\n"));
        let targets: Vec<String> = planned(&tables[0], &nat)
            .into_iter()
            .map(|f| f.target)
            .collect();
        assert!(targets.contains(&"ipv4/nft/nat/KUBE-SERVICES".to_string()));
    }

    #[test]
    fn parses_nft_tables_and_attributes_by_name() {
        let json = r#"{"nftables":[{"metainfo":{"version":"1.0.6"}},{"table":{"family":"ip","name":"kube-proxy","handle":1}},{"table":{"family":"inet","name":"firewalld","handle":2}},{"table":{"family":"ip","name":"nat","handle":3}}]}"#;
        let tables = parse_nft_tables(json).unwrap();
        assert_eq!(tables.len(), 3);
        assert!(attribute_nft(&tables[0]).owner.is_cluster());
        assert_eq!(attribute_nft(&tables[0]).target, "ip kube-proxy");
        assert!(!attribute_nft(&tables[1]).owner.is_cluster());
        assert!(!attribute_nft(&tables[2]).owner.is_cluster());
    }
}

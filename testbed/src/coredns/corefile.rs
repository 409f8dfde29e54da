//! The Corefile, parsed as CoreDNS (Caddy's parser) reads it: server blocks of zones (`.:53`,
//! `cluster.local:5353`) holding directives with arguments and optional `{ }` blocks; `{$ENV}`
//! substitution; comments. Each directive is checked against the plugin's own syntax: an unknown
//! directive or property fails as CoreDNS fails, a real CoreDNS plugin the double does not
//! implement is refused as such.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use thiserror::Error;

/// Plugins of CoreDNS's plugin.cfg that the double does not implement (refused loudly).
const KNOWN_UNIMPLEMENTED: &[&str] = &[
    "metadata",
    "geoip",
    "cancel",
    "tls",
    "quic",
    "timeouts",
    "multisocket",
    "nsid",
    "bufsize",
    "bind",
    "debug",
    "trace",
    "pprof",
    "dnstap",
    "local",
    "dns64",
    "acl",
    "any",
    "chaos",
    "tsig",
    "rewrite",
    "header",
    "dnssec",
    "autopath",
    "minimal",
    "template",
    "transfer",
    "hosts",
    "route53",
    "azure",
    "clouddns",
    "k8s_external",
    "file",
    "auto",
    "secondary",
    "etcd",
    "grpc",
    "erratic",
    "whoami",
    "on",
    "sign",
    "view",
    "root",
    "import",
    "whoami",
];

#[derive(Debug, Error, PartialEq, Eq)]
pub enum CorefileError {
    #[error("{file}:{line} - Error during parsing: {message}")]
    Parse {
        file: String,
        line: usize,
        message: String,
    },
    #[error(
        "{file}:{line} - Error during parsing: plugin {name:?} is not implemented by the testbed's CoreDNS double"
    )]
    NotImplemented {
        file: String,
        line: usize,
        name: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum PodsMode {
    Disabled,
    Insecure,
    Verified,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Kubernetes {
    pub zones: Vec<String>,
    pub pods: PodsMode,
    pub ttl: u32,
    pub fallthrough: Option<Vec<String>>,
    pub namespaces: Vec<String>,
    pub kubeconfig: Option<String>,
    pub endpoint: Option<String>,
    pub endpoint_pod_names: bool,
    pub noendpoints: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Policy {
    Random,
    RoundRobin,
    Sequential,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Forward {
    pub from: String,
    /// Upstreams as given (`/etc/resolv.conf` is read when the server starts).
    pub to: Vec<String>,
    pub except: Vec<String>,
    pub max_concurrent: Option<usize>,
    pub force_tcp: bool,
    pub prefer_udp: bool,
    pub policy: Policy,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Cache {
    pub ttl: u32,
    pub zones: Vec<String>,
    pub success_capacity: usize,
    pub denial_capacity: usize,
    pub disable_success: Vec<String>,
    pub disable_denial: Vec<String>,
}

/// One server block's configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Server {
    pub zones: Vec<String>,
    pub port: u16,
    pub errors: bool,
    pub log: bool,
    pub health: Option<(SocketAddr, Duration)>,
    pub ready: Option<SocketAddr>,
    pub prometheus: Option<SocketAddr>,
    pub kubernetes: Option<Kubernetes>,
    pub forward: Option<Forward>,
    pub cache: Option<Cache>,
    pub loop_detect: bool,
    pub reload: Option<Duration>,
    pub loadbalance: bool,
}

#[derive(Debug, Clone, PartialEq)]
struct Token {
    text: String,
    line: usize,
}

struct Directive {
    name: String,
    line: usize,
    args: Vec<String>,
    /// Lines of the block: each a property name and its arguments.
    block: Vec<(usize, Vec<String>)>,
}

fn tokenize(text: &str) -> Vec<Token> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let mut chars = raw.chars().peekable();
        let mut current = String::new();
        let mut quoted = false;
        let mut had_quote = false;
        while let Some(c) = chars.next() {
            if quoted {
                match c {
                    '"' => quoted = false,
                    '\\' => {
                        if let Some(n) = chars.next() {
                            current.push(n);
                        }
                    }
                    _ => current.push(c),
                }
                continue;
            }
            match c {
                '"' => {
                    quoted = true;
                    had_quote = true;
                }
                '#' if current.is_empty() => break,
                c if c.is_whitespace() => {
                    if !current.is_empty() || had_quote {
                        out.push(Token {
                            text: std::mem::take(&mut current),
                            line,
                        });
                        had_quote = false;
                    }
                }
                _ => current.push(c),
            }
        }
        if !current.is_empty() || had_quote {
            out.push(Token {
                text: current,
                line,
            });
        }
        out.push(Token {
            text: "\n".into(),
            line,
        });
    }
    out
}

fn substitute_env(text: &str, env: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("{$") {
        out.push_str(&rest[..start]);
        match rest[start..].find('}') {
            Some(end) => {
                let name = &rest[start + 2..start + end];
                out.push_str(&env(name).unwrap_or_default());
                rest = &rest[start + end + 1..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// Parses a Corefile (`file` names it in errors, e.g. `/etc/coredns/Corefile`).
pub fn parse(file: &str, text: &str) -> Result<Vec<Server>, CorefileError> {
    parse_with_env(file, text, &|name| std::env::var(name).ok())
}

pub fn parse_with_env(
    file: &str,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<Server>, CorefileError> {
    let text = substitute_env(text, env);
    let tokens = tokenize(&text);
    let err = |line: usize, message: String| CorefileError::Parse {
        file: file.to_string(),
        line,
        message,
    };
    let mut servers = Vec::new();
    let mut i = 0;
    let skip_newlines = |i: &mut usize| {
        while *i < tokens.len() && tokens[*i].text == "\n" {
            *i += 1;
        }
    };
    loop {
        skip_newlines(&mut i);
        if i >= tokens.len() {
            break;
        }
        // Keys up to the opening brace.
        let mut keys = Vec::new();
        let key_line = tokens[i].line;
        while i < tokens.len() && tokens[i].text != "{" {
            if tokens[i].text != "\n" {
                keys.push(tokens[i].text.trim_end_matches(',').to_string());
            }
            i += 1;
        }
        if i >= tokens.len() {
            return Err(err(key_line, "Unexpected EOF".into()));
        }
        i += 1;
        let mut directives = Vec::new();
        loop {
            skip_newlines(&mut i);
            let Some(tok) = tokens.get(i) else {
                return Err(err(key_line, "Unexpected EOF".into()));
            };
            if tok.text == "}" {
                i += 1;
                break;
            }
            let mut words = Vec::new();
            let line = tok.line;
            while i < tokens.len()
                && tokens[i].text != "\n"
                && tokens[i].text != "{"
                && tokens[i].text != "}"
            {
                words.push(tokens[i].text.clone());
                i += 1;
            }
            let mut block = Vec::new();
            if tokens.get(i).map(|t| t.text.as_str()) == Some("{") {
                i += 1;
                loop {
                    skip_newlines(&mut i);
                    let Some(t) = tokens.get(i) else {
                        return Err(err(line, "Unexpected EOF".into()));
                    };
                    if t.text == "}" {
                        i += 1;
                        break;
                    }
                    if t.text == "{" {
                        return Err(err(t.line, "Unexpected '{' in a plugin block".into()));
                    }
                    let pline = t.line;
                    let mut prop = Vec::new();
                    while i < tokens.len() && tokens[i].text != "\n" && tokens[i].text != "}" {
                        if tokens[i].text == "{" {
                            return Err(err(
                                tokens[i].line,
                                "Unexpected '{' in a plugin block".into(),
                            ));
                        }
                        prop.push(tokens[i].text.clone());
                        i += 1;
                    }
                    block.push((pline, prop));
                }
            }
            if words.is_empty() {
                return Err(err(line, "Unexpected '{' without a directive".into()));
            }
            let name = words.remove(0);
            directives.push(Directive {
                name,
                line,
                args: words,
                block,
            });
        }
        servers.push(server(file, keys, key_line, directives)?);
    }
    if servers.is_empty() {
        return Err(err(1, "no server blocks in the Corefile".into()));
    }
    Ok(servers)
}

fn fqdn(zone: &str) -> String {
    let z = zone.trim_end_matches('.').to_lowercase();
    if z.is_empty() {
        ".".into()
    } else {
        format!("{z}.")
    }
}

fn listen(addr: Option<&String>, default: &str) -> Result<SocketAddr, String> {
    let text = addr.map(String::as_str).unwrap_or(default);
    let full = if text.starts_with(':') {
        format!("0.0.0.0{text}")
    } else {
        text.to_string()
    };
    full.parse()
        .map_err(|_| format!("invalid address {text:?}"))
}

fn duration(text: &str) -> Result<Duration, String> {
    text.parse::<kubestrap::config::duration::GoDuration>()
        .map(|d| d.as_duration())
        .map_err(|_| format!("time: invalid duration {text:?}"))
}

fn server(
    file: &str,
    keys: Vec<String>,
    line: usize,
    directives: Vec<Directive>,
) -> Result<Server, CorefileError> {
    let perr = |line: usize, message: String| CorefileError::Parse {
        file: file.to_string(),
        line,
        message,
    };
    let mut zones = Vec::new();
    let mut port = None;
    for key in &keys {
        let key = key.strip_prefix("dns://").unwrap_or(key);
        let (zone, p) = match key.rsplit_once(':') {
            Some((z, p)) => (z, Some(p)),
            None => (key, None),
        };
        let p: u16 = match p {
            Some(p) => p
                .parse()
                .map_err(|_| perr(line, format!("invalid port {p:?} in server key {key:?}")))?,
            None => 53,
        };
        if port.is_some_and(|q| q != p) {
            return Err(perr(
                line,
                "all keys of a server block must use the same port in the testbed's double".into(),
            ));
        }
        port = Some(p);
        zones.push(fqdn(zone));
    }
    let mut s = Server {
        zones,
        port: port.unwrap_or(53),
        errors: false,
        log: false,
        health: None,
        ready: None,
        prometheus: None,
        kubernetes: None,
        forward: None,
        cache: None,
        loop_detect: false,
        reload: None,
        loadbalance: false,
    };
    for d in directives {
        let dline = d.line;
        let twice = |present: bool| {
            if present {
                Err(perr(
                    dline,
                    format!(
                        "plugin/{}: this plugin can only be used once per Server Block",
                        d.name
                    ),
                ))
            } else {
                Ok(())
            }
        };
        let no_block = |d: &Directive| {
            if let Some((l, p)) = d.block.first() {
                Err(perr(
                    *l,
                    format!(
                        "plugin/{}: unknown property {:?}",
                        d.name,
                        p.first().cloned().unwrap_or_default()
                    ),
                ))
            } else {
                Ok(())
            }
        };
        match d.name.as_str() {
            "errors" => {
                twice(s.errors)?;
                if !d.args.is_empty() {
                    return Err(perr(
                        dline,
                        format!(
                            "plugin/errors: Wrong argument count or unexpected line ending after '{}'",
                            d.args[0]
                        ),
                    ));
                }
                no_block(&d)?;
                s.errors = true;
            }
            "log" => {
                no_block(&d)?;
                s.log = true;
            }
            "health" => {
                twice(s.health.is_some())?;
                if d.args.len() > 1 {
                    return Err(perr(
                        dline,
                        "plugin/health: Wrong argument count or unexpected line ending".into(),
                    ));
                }
                let addr = listen(d.args.first(), ":8080")
                    .map_err(|m| perr(dline, format!("plugin/health: {m}")))?;
                let mut lameduck = Duration::ZERO;
                for (l, p) in &d.block {
                    match (p[0].as_str(), p.len()) {
                        ("lameduck", 2) => lameduck = duration(&p[1]).map_err(|m| perr(*l, format!("plugin/health: unable to parse lameduck duration value: '{}': {m}", p[1])))?,
                        ("lameduck", _) => return Err(perr(*l, "plugin/health: Wrong argument count or unexpected line ending after 'lameduck'".into())),
                        (other, _) => return Err(perr(*l, format!("plugin/health: unknown property {other:?}"))),
                    }
                }
                s.health = Some((addr, lameduck));
            }
            "ready" => {
                twice(s.ready.is_some())?;
                no_block(&d)?;
                if d.args.len() > 1 {
                    return Err(perr(
                        dline,
                        "plugin/ready: Wrong argument count or unexpected line ending".into(),
                    ));
                }
                s.ready = Some(
                    listen(d.args.first(), ":8181")
                        .map_err(|m| perr(dline, format!("plugin/ready: {m}")))?,
                );
            }
            "prometheus" => {
                no_block(&d)?;
                if d.args.len() > 1 {
                    return Err(perr(
                        dline,
                        "plugin/prometheus: Wrong argument count or unexpected line ending".into(),
                    ));
                }
                s.prometheus = Some(
                    listen(
                        d.args.first(),
                        "localhost:9153".replace("localhost", "127.0.0.1").as_str(),
                    )
                    .map_err(|m| perr(dline, format!("plugin/prometheus: {m}")))?,
                );
            }
            "kubernetes" => {
                twice(s.kubernetes.is_some())?;
                s.kubernetes = Some(
                    kubernetes(&d, &s.zones)
                        .map_err(|(l, m)| perr(l, format!("plugin/kubernetes: {m}")))?,
                );
            }
            "forward" => {
                twice(s.forward.is_some())?;
                s.forward =
                    Some(forward(&d).map_err(|(l, m)| perr(l, format!("plugin/forward: {m}")))?);
            }
            "cache" => {
                twice(s.cache.is_some())?;
                s.cache = Some(
                    cache(&d, &s.zones).map_err(|(l, m)| perr(l, format!("plugin/cache: {m}")))?,
                );
            }
            "loop" => {
                no_block(&d)?;
                if !d.args.is_empty() {
                    return Err(perr(
                        dline,
                        "plugin/loop: Wrong argument count or unexpected line ending".into(),
                    ));
                }
                s.loop_detect = true;
            }
            "reload" => {
                no_block(&d)?;
                let interval = match d.args.first() {
                    Some(v) => {
                        duration(v).map_err(|m| perr(dline, format!("plugin/reload: {m}")))?
                    }
                    None => Duration::from_secs(30),
                };
                if interval < Duration::from_secs(2) {
                    return Err(perr(
                        dline,
                        "plugin/reload: interval value must be greater or equal to 2s".into(),
                    ));
                }
                s.reload = Some(interval);
            }
            "loadbalance" => {
                no_block(&d)?;
                match d.args.first().map(String::as_str) {
                    None | Some("round_robin") => s.loadbalance = true,
                    Some(other) => {
                        return Err(perr(
                            dline,
                            format!("plugin/loadbalance: unknown policy: {other}"),
                        ));
                    }
                }
            }
            name if KNOWN_UNIMPLEMENTED.contains(&name) => {
                return Err(CorefileError::NotImplemented {
                    file: file.to_string(),
                    line: dline,
                    name: name.to_string(),
                });
            }
            other => return Err(perr(dline, format!("Unknown directive '{other}'"))),
        }
    }
    Ok(s)
}

fn kubernetes(d: &Directive, server_zones: &[String]) -> Result<Kubernetes, (usize, String)> {
    let zones = if d.args.is_empty() {
        server_zones.to_vec()
    } else {
        d.args.iter().map(|z| fqdn(z)).collect()
    };
    let mut k = Kubernetes {
        zones,
        pods: PodsMode::Disabled,
        ttl: 5,
        fallthrough: None,
        namespaces: Vec::new(),
        kubeconfig: None,
        endpoint: None,
        endpoint_pod_names: false,
        noendpoints: false,
    };
    for (l, p) in &d.block {
        let args = &p[1..];
        match p[0].as_str() {
            "pods" => {
                k.pods = match args {
                    [m] if m == "disabled" => PodsMode::Disabled,
                    [m] if m == "insecure" => PodsMode::Insecure,
                    [m] if m == "verified" => PodsMode::Verified,
                    [m] => return Err((*l, format!("invalid pods mode: {m:?}"))),
                    _ => {
                        return Err((
                            *l,
                            "Wrong argument count or unexpected line ending after 'pods'".into(),
                        ));
                    }
                }
            }
            "ttl" => {
                let [v] = args else {
                    return Err((
                        *l,
                        "Wrong argument count or unexpected line ending after 'ttl'".into(),
                    ));
                };
                let t: u32 = v
                    .parse()
                    .map_err(|_| (*l, format!("ttl must be an integer: {v:?}")))?;
                if t > 3600 {
                    return Err((*l, format!("ttl must be in range [0, 3600]: {t}")));
                }
                k.ttl = t;
            }
            "fallthrough" => k.fallthrough = Some(args.iter().map(|z| fqdn(z)).collect()),
            "namespaces" => k.namespaces = args.to_vec(),
            "kubeconfig" => match args {
                [path] | [path, _] => k.kubeconfig = Some(path.clone()),
                _ => {
                    return Err((
                        *l,
                        "Wrong argument count or unexpected line ending after 'kubeconfig'".into(),
                    ));
                }
            },
            "endpoint" => match args {
                [url] => k.endpoint = Some(url.clone()),
                _ => {
                    return Err((
                        *l,
                        "Wrong argument count or unexpected line ending after 'endpoint'".into(),
                    ));
                }
            },
            "endpoint_pod_names" => k.endpoint_pod_names = true,
            "noendpoints" => k.noendpoints = true,
            other => return Err((*l, format!("unknown property '{other}'"))),
        }
    }
    Ok(k)
}

fn forward(d: &Directive) -> Result<Forward, (usize, String)> {
    let line = d.line;
    if d.args.len() < 2 {
        return Err((
            line,
            "Wrong argument count or unexpected line ending".into(),
        ));
    }
    let to: Vec<String> = d.args[1..].to_vec();
    for t in &to {
        let host = t.strip_prefix("dns://").unwrap_or(t);
        if host.starts_with('/') {
            continue;
        }
        if host.starts_with("tls://") {
            return Err((
                line,
                format!(
                    "upstream {t:?}: tls:// upstreams are not implemented by the testbed's CoreDNS double"
                ),
            ));
        }
        let ok = host.parse::<IpAddr>().is_ok() || host.parse::<SocketAddr>().is_ok();
        if !ok {
            return Err((line, format!("not an IP address or file: {t:?}")));
        }
    }
    let mut f = Forward {
        from: fqdn(&d.args[0]),
        to,
        except: Vec::new(),
        max_concurrent: None,
        force_tcp: false,
        prefer_udp: false,
        policy: Policy::Random,
    };
    for (l, p) in &d.block {
        let args = &p[1..];
        match p[0].as_str() {
            "except" => f.except = args.iter().map(|z| fqdn(z)).collect(),
            "max_concurrent" => {
                let [v] = args else {
                    return Err((
                        *l,
                        "Wrong argument count or unexpected line ending after 'max_concurrent'"
                            .into(),
                    ));
                };
                f.max_concurrent = Some(v.parse().map_err(|_| {
                    (
                        *l,
                        format!("max_concurrent must be a positive integer: {v:?}"),
                    )
                })?);
            }
            "force_tcp" => f.force_tcp = true,
            "prefer_udp" => f.prefer_udp = true,
            "policy" => {
                f.policy = match args {
                    [p] if p == "random" => Policy::Random,
                    [p] if p == "round_robin" => Policy::RoundRobin,
                    [p] if p == "sequential" => Policy::Sequential,
                    [p] => return Err((*l, format!("unknown policy '{p}'"))),
                    _ => {
                        return Err((
                            *l,
                            "Wrong argument count or unexpected line ending after 'policy'".into(),
                        ));
                    }
                }
            }
            "expire"
            | "max_fails"
            | "health_check"
            | "tls"
            | "tls_servername"
            | "next"
            | "failfast_all_unhealthy_upstreams"
            | "failover" => {
                return Err((
                    *l,
                    format!(
                        "property {:?} is not implemented by the testbed's CoreDNS double",
                        p[0]
                    ),
                ));
            }
            other => return Err((*l, format!("unknown property '{other}'"))),
        }
    }
    if f.force_tcp && f.prefer_udp {
        return Err((
            line,
            "configuration error: `force_tcp` and `prefer_udp` can't be set together".into(),
        ));
    }
    Ok(f)
}

fn cache(d: &Directive, server_zones: &[String]) -> Result<Cache, (usize, String)> {
    let mut c = Cache {
        ttl: 3600,
        zones: server_zones.to_vec(),
        success_capacity: 9984,
        denial_capacity: 9984,
        disable_success: Vec::new(),
        disable_denial: Vec::new(),
    };
    let mut args = d.args.iter();
    if let Some(first) = args.next() {
        match first.parse::<u32>() {
            Ok(t) => c.ttl = t,
            Err(_) => c.zones = vec![fqdn(first)],
        }
        let rest: Vec<String> = args.map(|z| fqdn(z)).collect();
        if !rest.is_empty() {
            c.zones = rest;
        }
    }
    for (l, p) in &d.block {
        let args = &p[1..];
        match p[0].as_str() {
            "success" | "denial" => {
                let Some(cap) = args.first() else {
                    return Err((
                        *l,
                        format!(
                            "Wrong argument count or unexpected line ending after '{}'",
                            p[0]
                        ),
                    ));
                };
                let cap: usize = cap
                    .parse()
                    .map_err(|_| (*l, format!("capacity must be an integer: {cap:?}")))?;
                if p[0] == "success" {
                    c.success_capacity = cap
                } else {
                    c.denial_capacity = cap
                }
            }
            "disable" => {
                let kind = args.first().map(String::as_str);
                let zones: Vec<String> = if args.len() > 1 {
                    args[1..].iter().map(|z| fqdn(z)).collect()
                } else {
                    c.zones.clone()
                };
                match kind {
                    Some("success") => c.disable_success.extend(zones),
                    Some("denial") => c.disable_denial.extend(zones),
                    _ => {
                        return Err((
                            *l,
                            "cache type for disable must be \"success\" or \"denial\"".into(),
                        ));
                    }
                }
            }
            "prefetch" | "serve_stale" | "servfail" | "keepttl" => {
                return Err((
                    *l,
                    format!(
                        "property {:?} is not implemented by the testbed's CoreDNS double",
                        p[0]
                    ),
                ));
            }
            other => return Err((*l, format!("unknown property '{other}'"))),
        }
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// kubeadm's Corefile.
    pub const KUBEADM: &str = ".:53 {\n    errors\n    health {\n       lameduck 5s\n    }\n    ready\n    kubernetes cluster.local in-addr.arpa ip6.arpa {\n       pods insecure\n       fallthrough in-addr.arpa ip6.arpa\n       ttl 30\n    }\n    prometheus :9153\n    forward . /etc/resolv.conf {\n       max_concurrent 1000\n    }\n    cache 30 {\n       disable success cluster.local\n       disable denial cluster.local\n    }\n    loop\n    reload\n    loadbalance\n}\n";

    #[test]
    fn kubeadms_corefile() {
        let servers = parse("Corefile", KUBEADM).unwrap();
        assert_eq!(servers.len(), 1);
        let s = &servers[0];
        assert_eq!(s.zones, vec!["."]);
        assert_eq!(s.port, 53);
        assert_eq!(
            s.health,
            Some(("0.0.0.0:8080".parse().unwrap(), Duration::from_secs(5)))
        );
        assert_eq!(s.ready, Some("0.0.0.0:8181".parse().unwrap()));
        assert_eq!(s.prometheus, Some("0.0.0.0:9153".parse().unwrap()));
        let k = s.kubernetes.as_ref().unwrap();
        assert_eq!(
            k.zones,
            vec!["cluster.local.", "in-addr.arpa.", "ip6.arpa."]
        );
        assert_eq!(k.pods, PodsMode::Insecure);
        assert_eq!(k.ttl, 30);
        assert_eq!(
            k.fallthrough,
            Some(vec!["in-addr.arpa.".into(), "ip6.arpa.".into()])
        );
        let f = s.forward.as_ref().unwrap();
        assert_eq!(f.from, ".");
        assert_eq!(f.to, vec!["/etc/resolv.conf"]);
        assert_eq!(f.max_concurrent, Some(1000));
        let c = s.cache.as_ref().unwrap();
        assert_eq!(c.ttl, 30);
        assert_eq!(c.disable_success, vec!["cluster.local."]);
        assert!(s.loop_detect && s.loadbalance && s.errors);
        assert_eq!(s.reload, Some(Duration::from_secs(30)));
    }

    #[test]
    fn unknown_plugins_properties_and_syntax_are_refused() {
        let bad = KUBEADM.replace("    loop\n", "    loop\n    frobnicate on\n");
        assert_eq!(
            parse("/etc/coredns/Corefile", &bad)
                .unwrap_err()
                .to_string(),
            "/etc/coredns/Corefile:21 - Error during parsing: Unknown directive 'frobnicate'"
        );
        let hosts = KUBEADM.replace("    loop\n", "    hosts\n");
        assert!(matches!(
            parse("Corefile", &hosts),
            Err(CorefileError::NotImplemented { .. })
        ));
        let prop = KUBEADM.replace("ttl 30", "ttl 30\n       upstream");
        assert!(
            parse("Corefile", &prop)
                .unwrap_err()
                .to_string()
                .contains("plugin/kubernetes: unknown property 'upstream'")
        );
        let unclosed = KUBEADM.trim_end().trim_end_matches('}');
        assert!(
            parse("Corefile", unclosed)
                .unwrap_err()
                .to_string()
                .contains("Unexpected EOF")
        );
        let pods = KUBEADM.replace("pods insecure", "pods sometimes");
        assert!(parse("Corefile", &pods).is_err());
        let twice = KUBEADM.replace("    loop\n", "    loop\n    forward . 10.0.0.1\n");
        assert!(
            parse("Corefile", &twice)
                .unwrap_err()
                .to_string()
                .contains("only be used once")
        );
        let upstream = KUBEADM.replace("/etc/resolv.conf", "dns.example");
        assert!(parse("Corefile", &upstream).is_err());
    }

    #[test]
    fn several_blocks_ports_comments_quotes_and_env() {
        let text = "# test\ncluster.local:5353 example.org:5353 {\n  kubernetes # the zones of the block\n}\n. {\n  forward . 10.213.0.53:53 \"192.0.2.1\" {\n    policy sequential\n  }\n}\n{$EXTRA}\n";
        let servers = parse_with_env("Corefile", text, &|n| {
            (n == "EXTRA").then(|| "example.net:1053 {\n  log\n}".to_string())
        })
        .unwrap();
        assert_eq!(servers.len(), 3);
        assert_eq!(servers[0].port, 5353);
        assert_eq!(
            servers[0].kubernetes.as_ref().unwrap().zones,
            vec!["cluster.local.", "example.org."]
        );
        assert_eq!(
            servers[1].forward.as_ref().unwrap().to,
            vec!["10.213.0.53:53", "192.0.2.1"]
        );
        assert_eq!(
            servers[1].forward.as_ref().unwrap().policy,
            Policy::Sequential
        );
        assert!(servers[2].log);
        assert_eq!(servers[2].port, 1053);
    }
}

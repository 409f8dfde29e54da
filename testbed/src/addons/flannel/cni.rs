//! The flannel CNI plugin (the `flannel-cni-plugin` image's `/flannel`, which its init container copies
//! to /opt/cni/bin): a meta-plugin as upstream's, reading `/run/flannel/subnet.env`, building the
//! delegate's configuration (bridge by default, host-local IPAM over the node's subnet with a route
//! to the flannel network, `ipMasq` when flanneld does not masquerade, the subnet's MTU), keeping it
//! under `/var/lib/cni/flannel/<container id>` for DEL, and running the delegate from `CNI_PATH`.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{Map, Value, json};

const DEFAULT_SUBNET_FILE: &str = "/run/flannel/subnet.env";
const DEFAULT_DATA_DIR: &str = "/var/lib/cni/flannel";
const SUPPORTED: &[&str] = &["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0"];

/// Where the node image keeps the plugin "binary" the image's `/flannel` is: a launcher of the
/// testbed's multi-call binary (so the init container's `cp` copies a few bytes, not the binary).
pub const PLUGIN_PATH: &str = "/opt/testbed/images/flannel-cni-plugin/flannel";
pub const PLUGIN_SCRIPT: &str = "#!/bin/sh\n# the testbed's flannel CNI plugin (kubestrap-testbed)\nexec /opt/testbed/bin/tbnode flannel-cni \"$@\"\n";

/// subnet.env as the plugin reads it.
#[derive(Debug, Default, PartialEq)]
struct SubnetEnv {
    network: Option<String>,
    subnet: Option<String>,
    ipv6_network: Option<String>,
    ipv6_subnet: Option<String>,
    mtu: Option<u64>,
    ipmasq: Option<bool>,
}

fn cidr(value: &str) -> Result<String, String> {
    let net: ipnet::IpNet = value
        .parse()
        .map_err(|_| format!("invalid CIDR address: {value}"))?;
    Ok(net.trunc().to_string())
}

fn load_subnet_env(path: &str) -> Result<SubnetEnv, String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "open {path}: {}",
            if e.kind() == std::io::ErrorKind::NotFound {
                "no such file or directory".to_string()
            } else {
                e.to_string()
            }
        )
    })?;
    let mut env = SubnetEnv::default();
    for line in text.lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        match key {
            "FLANNEL_NETWORK" => env.network = Some(cidr(value)?),
            "FLANNEL_SUBNET" => env.subnet = Some(cidr(value)?),
            "FLANNEL_IPV6_NETWORK" => env.ipv6_network = Some(cidr(value)?),
            "FLANNEL_IPV6_SUBNET" => env.ipv6_subnet = Some(cidr(value)?),
            "FLANNEL_MTU" => {
                env.mtu =
                    Some(value.parse().map_err(|_| {
                        format!("strconv.ParseUint: parsing {value:?}: invalid syntax")
                    })?)
            }
            "FLANNEL_IPMASQ" => env.ipmasq = Some(value == "true"),
            _ => {}
        }
    }
    let mut missing = Vec::new();
    if env.network.is_none() && env.ipv6_network.is_none() {
        missing.extend(["FLANNEL_NETWORK", "FLANNEL_IPV6_NETWORK"]);
    }
    if env.subnet.is_none() && env.ipv6_subnet.is_none() {
        missing.extend(["FLANNEL_SUBNET", "FLANNEL_IPV6_SUBNET"]);
    }
    if env.mtu.is_none() {
        missing.push("FLANNEL_MTU");
    }
    if env.ipmasq.is_none() {
        missing.push("FLANNEL_IPMASQ");
    }
    if !missing.is_empty() {
        return Err(format!("{path} is missing {}", missing.join(", ")));
    }
    Ok(env)
}

/// The delegate's configuration for ADD, from the plugin's configuration and subnet.env.
fn delegate(conf: &Map<String, Value>, env: &SubnetEnv) -> Result<Value, String> {
    let mut d = match conf.get("delegate") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(d)) => d.clone(),
        Some(_) => return Err("failed to load netconf: delegate is not an object".into()),
    };
    if d.get("type").is_some_and(|t| !t.is_string()) {
        return Err("'delegate' dictionary, if present, must have (string) 'type' field".into());
    }
    if d.contains_key("name") {
        return Err(
            "'delegate' dictionary must not have 'name' field, it'll be set by flannel".into(),
        );
    }
    if d.contains_key("ipam") {
        return Err(
            "'delegate' dictionary must not have 'ipam' field, it'll be set by flannel".into(),
        );
    }
    if let Some(rc) = conf.get("runtimeConfig").filter(|v| !v.is_null()) {
        d.insert("runtimeConfig".into(), rc.clone());
    }
    d.insert(
        "name".into(),
        conf.get("name").cloned().unwrap_or(json!("")),
    );
    d.entry("type").or_insert(json!("bridge"));
    d.entry("ipMasq")
        .or_insert(json!(!env.ipmasq.unwrap_or(false)));
    d.entry("mtu").or_insert(json!(env.mtu));
    if d["type"] == "bridge" {
        d.entry("isGateway").or_insert(json!(true));
    }
    if let Some(v) = conf
        .get("cniVersion")
        .filter(|v| v.as_str().is_some_and(|s| !s.is_empty()))
    {
        d.insert("cniVersion".into(), v.clone());
    }
    let mut ipam = match conf.get("ipam") {
        Some(Value::Object(i)) => i.clone(),
        _ => Map::new(),
    };
    ipam.entry("type").or_insert(json!("host-local"));
    let ranges: Vec<Value> = [&env.subnet, &env.ipv6_subnet]
        .into_iter()
        .flatten()
        .map(|s| json!([{"subnet": s}]))
        .collect();
    ipam.insert("ranges".into(), json!(ranges));
    let mut routes: Vec<Value> = match ipam.get("routes") {
        Some(Value::Array(r)) => r.clone(),
        None | Some(Value::Null) => Vec::new(),
        Some(_) => return Err("failed to assemble Delegate IPAM: failed to read IPAM routes: failed to parse ipam.routes".into()),
    };
    routes.extend(
        [&env.network, &env.ipv6_network]
            .into_iter()
            .flatten()
            .map(|n| json!({"dst": n})),
    );
    ipam.insert("routes".into(), json!(routes));
    d.insert("ipam".into(), Value::Object(ipam));
    Ok(Value::Object(d))
}

/// Finds the delegate plugin on `CNI_PATH`, as libcni's invoke does.
fn find_plugin(kind: &str) -> Result<PathBuf, String> {
    let paths = std::env::var("CNI_PATH").unwrap_or_default();
    paths
        .split(':')
        .filter(|p| !p.is_empty())
        .map(|p| Path::new(p).join(kind))
        .find(|p| p.is_file())
        .ok_or_else(|| format!("failed to find plugin {kind:?} in path [{paths}]"))
}

/// Runs the delegate with this process's CNI environment; its stdout on success, its error's
/// message otherwise.
fn invoke(kind: &str, command: &str, conf: &[u8]) -> Result<String, String> {
    let binary = find_plugin(kind)?;
    let mut child = Command::new(&binary)
        .env("CNI_COMMAND", command)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("exec {}: {e}", binary.display()))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(conf)
            .map_err(|e| format!("write to {kind}: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("wait for {kind}: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        return Ok(stdout);
    }
    let why = serde_json::from_str::<Value>(&stdout)
        .ok()
        .and_then(|v| {
            let msg = v["msg"].as_str()?.to_string();
            Some(match v["details"].as_str().filter(|d| !d.is_empty()) {
                Some(d) => format!("{msg}; {d}"),
                None => msg,
            })
        })
        .unwrap_or_else(|| {
            format!(
                "netplugin failed: {:?}",
                String::from_utf8_lossy(&out.stderr).trim()
            )
        });
    Err(why)
}

fn load(stdin: &[u8]) -> Result<Map<String, Value>, String> {
    match serde_json::from_slice::<Value>(stdin) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err("failed to load netconf: not a JSON object".into()),
        Err(e) => Err(format!("failed to load netconf: {e}")),
    }
}

fn string_or(conf: &Map<String, Value>, key: &str, default: &str) -> String {
    conf.get(key)
        .and_then(|v| v.as_str())
        .filter(|s| !s.is_empty())
        .unwrap_or(default)
        .to_string()
}

fn add(stdin: &[u8], container: &str) -> Result<String, String> {
    let conf = load(stdin)?;
    let env = load_subnet_env(&string_or(&conf, "subnetFile", DEFAULT_SUBNET_FILE))?;
    let delegate = delegate(&conf, &env)?;
    let bytes = serde_json::to_vec(&delegate).map_err(|e| e.to_string())?;
    let dir = string_or(&conf, "dataDir", DEFAULT_DATA_DIR);
    save(&dir, container, &bytes).map_err(|e| e.to_string())?;
    let kind = delegate["type"].as_str().unwrap_or("bridge").to_string();
    invoke(&kind, "ADD", &bytes).map_err(|e| format!("failed to delegate add: {e}"))
}

fn save(dir: &str, container: &str, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(Path::new(dir).join(container))?;
    file.write_all(bytes)
}

fn del(stdin: &[u8], container: &str) -> Result<String, String> {
    let conf = load(stdin)?;
    let path = Path::new(&string_or(&conf, "dataDir", DEFAULT_DATA_DIR)).join(container);
    let saved = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(String::new()),
        Err(e) => return Err(e.to_string()),
    };
    let Some(kind) = serde_json::from_slice::<Value>(&saved)
        .ok()
        .and_then(|v| v["type"].as_str().map(str::to_string))
    else {
        eprint!("failed to parse netconf: {}", path.display());
        return Ok(String::new());
    };
    invoke(&kind, "DEL", &saved)?;
    let _ = std::fs::remove_file(&path);
    Ok(String::new())
}

/// Entry point of `tbnode flannel-cni` (what the copied plugin runs): CNI's environment and stdin in,
/// the result or a CNI error object out.
pub fn main(_args: &[String]) -> i32 {
    let command = std::env::var("CNI_COMMAND").unwrap_or_default();
    let container = std::env::var("CNI_CONTAINERID").unwrap_or_default();
    let mut stdin = Vec::new();
    if command != "VERSION" {
        let _ = std::io::stdin().read_to_end(&mut stdin);
    }
    let outcome = match command.as_str() {
        "VERSION" => Ok(json!({"cniVersion": "1.0.0", "supportedVersions": SUPPORTED}).to_string()),
        "ADD" | "DEL" if container.is_empty() => {
            Err("required env variables [CNI_CONTAINERID] missing".to_string())
        }
        "ADD" => add(&stdin, &container),
        "DEL" => del(&stdin, &container),
        "CHECK" | "GC" | "STATUS" => Ok(String::new()),
        "" => Err("required env variables [CNI_COMMAND] missing".to_string()),
        other => Err(format!("unknown CNI_COMMAND: {other}")),
    };
    match outcome {
        Ok(out) => {
            print!("{out}");
            0
        }
        Err(msg) => {
            let version = load(&stdin)
                .ok()
                .and_then(|c| {
                    c.get("cniVersion")
                        .and_then(|v| v.as_str())
                        .map(str::to_string)
                })
                .unwrap_or_else(|| "1.0.0".into());
            println!(
                "{}",
                json!({"cniVersion": version, "code": 999, "msg": msg})
            );
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> SubnetEnv {
        SubnetEnv {
            network: Some("10.244.0.0/16".into()),
            subnet: Some("10.244.1.0/24".into()),
            mtu: Some(1450),
            ipmasq: Some(true),
            ..Default::default()
        }
    }

    #[test]
    fn the_delegate_is_a_bridge_over_the_nodes_subnet() {
        let conf = load(br#"{"name":"cbr0","cniVersion":"0.3.1","type":"flannel","delegate":{"hairpinMode":true,"isDefaultGateway":true}}"#).unwrap();
        let d = delegate(&conf, &env()).unwrap();
        assert_eq!(
            d,
            json!({"name": "cbr0", "cniVersion": "0.3.1", "type": "bridge", "hairpinMode": true,
                "isDefaultGateway": true, "isGateway": true, "ipMasq": false, "mtu": 1450,
                "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.244.1.0/24"}]],
                         "routes": [{"dst": "10.244.0.0/16"}]}})
        );
        let with_mtu =
            load(br#"{"name":"cbr0","type":"flannel","delegate":{"mtu":1400}}"#).unwrap();
        assert_eq!(delegate(&with_mtu, &env()).unwrap()["mtu"], 1400);
        let named = load(br#"{"name":"cbr0","type":"flannel","delegate":{"name":"x"}}"#).unwrap();
        assert!(
            delegate(&named, &env())
                .unwrap_err()
                .contains("must not have 'name'")
        );
    }

    #[test]
    fn subnet_env_needs_every_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("subnet.env");
        std::fs::write(&path, "FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.1.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n").unwrap();
        assert_eq!(load_subnet_env(path.to_str().unwrap()).unwrap(), env());
        std::fs::write(&path, "FLANNEL_NETWORK=10.244.0.0/16\n").unwrap();
        assert_eq!(
            load_subnet_env(path.to_str().unwrap()).unwrap_err(),
            format!(
                "{} is missing FLANNEL_SUBNET, FLANNEL_IPV6_SUBNET, FLANNEL_MTU, FLANNEL_IPMASQ",
                path.display()
            )
        );
        assert_eq!(
            load_subnet_env("/nonexistent/subnet.env").unwrap_err(),
            "open /nonexistent/subnet.env: no such file or directory"
        );
    }
}

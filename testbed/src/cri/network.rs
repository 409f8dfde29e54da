//! Sandbox networking as containerd's CRI plugin does it: a network namespace per sandbox that does
//! not use the node's network (`/var/run/netns/cni-<id>`), the `cni-loopback` network for `lo` and
//! the pod network from the lexically first `.conf`/`.conflist`/`.json` file in /etc/cni/net.d,
//! run through the plugin binaries in /opt/cni/bin (ADD in order with the previous result, DEL in
//! reverse), results cached under /var/lib/cni/results as libcni does, the pod IPs taken from the
//! result (IPv4 first).

use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine;
use serde_json::{Value, json};

pub const CONF_DIR: &str = "/etc/cni/net.d";
pub const BIN_DIR: &str = "/opt/cni/bin";
pub const CACHE_DIR: &str = "/var/lib/cni/results";
pub const NETNS_DIR: &str = "/var/run/netns";
const IFNAME: &str = "eth0";

/// The loopback network containerd configures in every pod namespace.
fn loopback() -> Value {
    json!({"cniVersion": "0.3.1", "name": "cni-loopback", "plugins": [{"type": "loopback"}]})
}

/// The pod's identity as CNI_ARGS carry it.
#[derive(Debug, Clone, Default)]
pub struct PodRef {
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

/// A network configuration list (a single `.conf` becomes a list of one plugin, as libcni does).
#[derive(Debug, Clone)]
pub struct NetworkList {
    pub name: String,
    pub version: String,
    pub plugins: Vec<Value>,
    pub bytes: Vec<u8>,
}

fn as_list(value: &Value, bytes: Vec<u8>, file: &str) -> Result<NetworkList> {
    let name = value["name"]
        .as_str()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| anyhow!("error parsing configuration list: no name ({file})"))?
        .to_string();
    let version = value["cniVersion"].as_str().unwrap_or("0.1.0").to_string();
    let plugins = match value["plugins"].as_array() {
        Some(p) => p.clone(),
        None if value["type"].is_string() => vec![value.clone()],
        None => bail!("error parsing configuration list: no 'plugins' key ({file})"),
    };
    if plugins.is_empty() {
        bail!("error parsing configuration list: no plugins in list ({file})");
    }
    for p in &plugins {
        if p["type"].as_str().is_none_or(str::is_empty) {
            bail!("error parsing configuration: missing 'type' ({file})");
        }
    }
    Ok(NetworkList {
        name,
        version,
        plugins,
        bytes,
    })
}

/// The pod network: the lexically first config file in `dir`, as containerd loads it.
pub fn load(dir: &Path) -> Result<NetworkList> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|_| anyhow!("cni plugin not initialized"))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| ["conf", "conflist", "json"].contains(&e))
        })
        .collect();
    files.sort();
    let file = files
        .first()
        .ok_or_else(|| anyhow!("cni plugin not initialized"))?;
    let bytes = std::fs::read(file).with_context(|| format!("read {}", file.display()))?;
    let value: Value = serde_json::from_slice(&bytes)
        .with_context(|| format!("cni config load failed: {}", file.display()))?;
    as_list(&value, bytes, &file.display().to_string())
        .map_err(|e| anyhow!("cni config load failed: {e}"))
}

fn cni_args(pod: &PodRef, sandbox: &str) -> String {
    format!(
        "IgnoreUnknown=1;K8S_POD_NAMESPACE={};K8S_POD_NAME={};K8S_POD_INFRA_CONTAINER_ID={sandbox};K8S_POD_UID={}",
        pod.namespace, pod.name, pod.uid
    )
}

/// One attachment of a sandbox to a network: what CNI's environment names.
struct Attachment<'a> {
    sandbox: &'a str,
    netns: &'a Path,
    ifname: &'a str,
    args: &'a str,
}

/// Runs one plugin; returns its stdout (the result on ADD).
fn exec_plugin(
    plugin: &Value,
    list: &NetworkList,
    command: &str,
    at: &Attachment<'_>,
    prev: Option<&Value>,
) -> Result<Value> {
    let Attachment {
        sandbox,
        netns,
        ifname,
        args,
    } = *at;
    let kind = plugin["type"].as_str().unwrap_or_default();
    let binary = Path::new(BIN_DIR).join(kind);
    if !binary.exists() {
        bail!("failed to find plugin {kind:?} in path [{BIN_DIR}]");
    }
    let mut conf = plugin.clone();
    conf["name"] = json!(list.name);
    conf["cniVersion"] = json!(list.version);
    if let Some(prev) = prev {
        conf["prevResult"] = prev.clone();
    }
    let mut child = Command::new(&binary)
        .env_clear()
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", sandbox)
        .env("CNI_NETNS", netns)
        .env("CNI_IFNAME", ifname)
        .env("CNI_ARGS", args)
        .env("CNI_PATH", BIN_DIR)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("run CNI plugin {}", binary.display()))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(conf.to_string().as_bytes())?;
    }
    let out = child.wait_with_output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        let why = serde_json::from_str::<Value>(&stdout)
            .ok()
            .and_then(|v| {
                let msg = v["msg"].as_str()?.to_string();
                Some(match v["details"].as_str().filter(|d| !d.is_empty()) {
                    Some(d) => format!("{msg}: {d}"),
                    None => msg,
                })
            })
            .unwrap_or_else(|| {
                format!(
                    "{}{}",
                    stdout.trim(),
                    String::from_utf8_lossy(&out.stderr).trim()
                )
            });
        bail!(
            "plugin type={kind:?} name={:?} failed ({command}): {why}",
            list.name
        );
    }
    if stdout.trim().is_empty() {
        return Ok(prev.cloned().unwrap_or(Value::Null));
    }
    serde_json::from_str(&stdout).with_context(|| format!("plugin {kind} returned {stdout:?}"))
}

fn cache_path(network: &str, sandbox: &str, ifname: &str) -> PathBuf {
    Path::new(CACHE_DIR).join(format!("{network}-{sandbox}-{ifname}"))
}

fn write_cache(list: &NetworkList, sandbox: &str, ifname: &str, args: &str, result: &Value) {
    let entry = json!({
        "kind": "cniCacheV1",
        "containerId": sandbox,
        "config": base64::engine::general_purpose::STANDARD.encode(&list.bytes),
        "ifName": ifname,
        "networkName": list.name,
        "cniArgs": args.split(';').filter_map(|kv| kv.split_once('=')).map(|(k, v)| json!([k, v])).collect::<Vec<_>>(),
        "result": result,
    });
    let _ = std::fs::create_dir_all(CACHE_DIR);
    let _ = std::fs::write(cache_path(&list.name, sandbox, ifname), entry.to_string());
}

/// The cached networks of a sandbox: (list, ifname, args) from /var/lib/cni/results.
fn cached(sandbox: &str) -> Vec<(NetworkList, String, String, PathBuf)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(CACHE_DIR).into_iter().flatten().flatten() {
        let path = entry.path();
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let Ok(v) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        if v["containerId"].as_str() != Some(sandbox) {
            continue;
        }
        let Some(bytes) = v["config"]
            .as_str()
            .and_then(|c| base64::engine::general_purpose::STANDARD.decode(c).ok())
        else {
            continue;
        };
        let Ok(conf) = serde_json::from_slice::<Value>(&bytes) else {
            continue;
        };
        let Ok(list) = as_list(&conf, bytes, &path.display().to_string()) else {
            continue;
        };
        let args = v["cniArgs"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|kv| Some(format!("{}={}", kv[0].as_str()?, kv[1].as_str()?)))
            .collect::<Vec<_>>()
            .join(";");
        let ifname = v["ifName"].as_str().unwrap_or(IFNAME).to_string();
        out.push((list, ifname, args, path));
    }
    out
}

/// The sandbox ids with a cached CNI result (for releasing what a node restart left behind).
pub fn cached_sandboxes() -> Vec<String> {
    let mut ids: Vec<String> = std::fs::read_dir(CACHE_DIR)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let text = std::fs::read_to_string(e.path()).ok()?;
            let v: Value = serde_json::from_str(&text).ok()?;
            v["containerId"].as_str().map(str::to_string)
        })
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

fn add_list(
    list: &NetworkList,
    sandbox: &str,
    netns: &Path,
    ifname: &str,
    args: &str,
) -> Result<Value> {
    let at = Attachment {
        sandbox,
        netns,
        ifname,
        args,
    };
    let mut result: Option<Value> = None;
    for plugin in &list.plugins {
        let out = exec_plugin(plugin, list, "ADD", &at, result.as_ref())?;
        result = Some(out);
    }
    let result = result.unwrap_or(Value::Null);
    write_cache(list, sandbox, ifname, args, &result);
    Ok(result)
}

fn del_list(
    list: &NetworkList,
    sandbox: &str,
    netns: &Path,
    ifname: &str,
    args: &str,
) -> Result<()> {
    let at = Attachment {
        sandbox,
        netns,
        ifname,
        args,
    };
    let mut first_error = None;
    for plugin in list.plugins.iter().rev() {
        if let Err(e) = exec_plugin(plugin, list, "DEL", &at, None)
            && first_error.is_none()
        {
            first_error = Some(e);
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// The pod IPs of an ADD result: those of interfaces inside the sandbox (all when the result names
/// none), IPv4 first as containerd orders them.
pub fn pod_ips(result: &Value) -> Vec<String> {
    let interfaces = result["interfaces"].as_array().cloned().unwrap_or_default();
    let mut ips: Vec<IpAddr> = result["ips"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|ip| match ip["interface"].as_u64() {
            Some(i) => interfaces
                .get(i as usize)
                .is_none_or(|iface| iface["sandbox"].as_str().is_some_and(|s| !s.is_empty())),
            None => true,
        })
        .filter_map(|ip| {
            let address = ip["address"].as_str()?;
            address.split('/').next()?.parse().ok()
        })
        .collect();
    for old in ["ip4", "ip6"] {
        if let Some(ip) = result[old]["ip"]
            .as_str()
            .and_then(|a| a.split('/').next()?.parse().ok())
        {
            ips.push(ip);
        }
    }
    ips.sort_by_key(|ip| ip.is_ipv6());
    ips.dedup();
    ips.iter().map(IpAddr::to_string).collect()
}

fn netns_path(sandbox: &str) -> PathBuf {
    Path::new(NETNS_DIR).join(format!("cni-{}", &sandbox[..sandbox.len().min(32)]))
}

/// Creates the sandbox's network namespace and sets it up; returns its path and the pod IPs.
/// A failure tears down what was made, as containerd does.
pub fn setup(sandbox: &str, pod: &PodRef) -> Result<(PathBuf, Vec<String>)> {
    let list = load(Path::new(CONF_DIR))
        .map_err(|e| anyhow!("failed to setup network for sandbox {sandbox:?}: {e}"))?;
    let netns = netns_path(sandbox);
    let name = netns
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_string();
    let out = Command::new("ip")
        .args(["netns", "add", &name])
        .output()
        .context("run ip netns add")?;
    if !out.status.success() {
        bail!(
            "failed to create network namespace for sandbox {sandbox:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let args = cni_args(pod, sandbox);
    let made = (|| -> Result<Value> {
        let lo = as_list(
            &loopback(),
            loopback().to_string().into_bytes(),
            "cni-loopback",
        )?;
        add_list(&lo, sandbox, &netns, "lo", &args)?;
        add_list(&list, sandbox, &netns, IFNAME, &args)
    })();
    match made {
        Ok(result) => Ok((netns, pod_ips(&result))),
        Err(e) => {
            teardown(sandbox, Some(&netns));
            Err(anyhow!(
                "failed to setup network for sandbox {sandbox:?}: {e:#}"
            ))
        }
    }
}

/// CNI DEL for every network cached for the sandbox (pod network first, then loopback), then the
/// namespace itself. A DEL failure is logged by the caller's return but never keeps the namespace.
pub fn teardown(sandbox: &str, netns: Option<&Path>) -> Option<String> {
    let path = netns
        .map(Path::to_path_buf)
        .unwrap_or_else(|| netns_path(sandbox));
    let mut entries = cached(sandbox);
    entries.sort_by_key(|(list, _, _, _)| list.name == "cni-loopback");
    let mut error = None;
    for (list, ifname, args, cache) in entries {
        match del_list(&list, sandbox, &path, &ifname, &args) {
            Ok(()) => {
                let _ = std::fs::remove_file(cache);
            }
            Err(e) => {
                error.get_or_insert(format!("{e:#}"));
            }
        }
    }
    if path.exists() {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        let _ = Command::new("ip").args(["netns", "delete", &name]).output();
    }
    error
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lexically_first_config_is_the_network() {
        let dir = tempfile::tempdir().unwrap();
        assert!(
            load(dir.path())
                .unwrap_err()
                .to_string()
                .contains("not initialized")
        );
        std::fs::write(
            dir.path().join("20-b.conflist"),
            r#"{"cniVersion":"1.0.0","name":"b","plugins":[{"type":"bridge"}]}"#,
        )
        .unwrap();
        std::fs::write(
            dir.path().join("10-a.conf"),
            r#"{"cniVersion":"0.4.0","name":"a","type":"bridge","bridge":"cni0"}"#,
        )
        .unwrap();
        std::fs::write(dir.path().join("05-ignored.txt"), "x").unwrap();
        let list = load(dir.path()).unwrap();
        assert_eq!(list.name, "a");
        assert_eq!(list.version, "0.4.0");
        assert_eq!(list.plugins[0]["bridge"], "cni0");
        std::fs::write(dir.path().join("00-bad.json"), r#"{"cniVersion":"1.0.0"}"#).unwrap();
        assert!(
            load(dir.path())
                .unwrap_err()
                .to_string()
                .contains("no name")
        );
    }

    #[test]
    fn pod_ips_come_from_the_sandbox_interfaces_ipv4_first() {
        let result = json!({
            "interfaces": [{"name": "cni0"}, {"name": "veth1"}, {"name": "eth0", "sandbox": "/var/run/netns/x"}],
            "ips": [
                {"address": "fd00:10:244::5/64", "interface": 2},
                {"address": "10.244.1.5/24", "interface": 2, "gateway": "10.244.1.1"},
                {"address": "10.244.1.1/24", "interface": 0}
            ]
        });
        assert_eq!(pod_ips(&result), ["10.244.1.5", "fd00:10:244::5"]);
        assert_eq!(
            pod_ips(&json!({"ip4": {"ip": "10.1.0.3/16"}})),
            ["10.1.0.3"]
        );
    }
}

//! flanneld's network configuration (`net-conf.json`): decoded as flannel's `subnet.ParseConfig` and
//! its vxlan backend decode it, with their error wording, so a bad value fails the double as it
//! fails flanneld.

use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};
use serde_json::Value;

/// The parts of `net-conf.json` the double acts on.
#[derive(Debug, Clone, PartialEq)]
pub struct NetConf {
    pub enable_ipv4: bool,
    pub enable_ipv6: bool,
    pub network: Option<Ipv4Net>,
    pub ipv6_network: Option<Ipv6Net>,
    pub backend_type: String,
    /// The raw `Backend` object (decoded by the backend).
    pub backend: Value,
}

/// The vxlan backend's settings (`Backend` of type `vxlan`).
#[derive(Debug, Clone, PartialEq)]
pub struct Vxlan {
    pub vni: u32,
    /// 0: the kernel's default (8472).
    pub port: u16,
    pub gbp: bool,
    pub learning: bool,
    pub direct_routing: bool,
}

/// Linux's vxlan default destination port, used when `Port` is 0.
pub const KERNEL_VXLAN_PORT: u16 = 8472;

impl Vxlan {
    pub fn device(&self) -> String {
        format!("flannel.{}", self.vni)
    }
    pub fn dst_port(&self) -> u16 {
        if self.port == 0 {
            KERNEL_VXLAN_PORT
        } else {
            self.port
        }
    }
}

/// Go's `encoding/json` wording for a value of the wrong type.
fn type_error(value: &Value, field: &str, go_type: &str) -> String {
    let got = match value {
        Value::String(_) => "string",
        Value::Number(_) => "number",
        Value::Bool(_) => "bool",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
        Value::Null => "null",
    };
    format!("json: cannot unmarshal {got} into Go struct field {field} of type {go_type}")
}

/// Go's json matches field names case-insensitively.
fn field<'a>(object: &'a serde_json::Map<String, Value>, name: &str) -> Option<&'a Value> {
    object
        .get(name)
        .or_else(|| {
            object
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v)
        })
        .filter(|v| !v.is_null())
}

fn bool_field(
    object: &serde_json::Map<String, Value>,
    name: &str,
    owner: &str,
    default: bool,
) -> Result<bool, String> {
    match field(object, name) {
        None => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(type_error(other, &format!("{owner}.{name}"), "bool")),
    }
}

/// flannel's `ip.IP4Net` JSON form: a quoted CIDR, parsed by Go's `net.ParseCIDR`.
fn cidr_v4(value: &Value, name: &str) -> Result<Ipv4Net, String> {
    let Value::String(text) = value else {
        return Err(type_error(value, &format!("Config.{name}"), "ip.IP4Net"));
    };
    let net: Ipv4Net = text
        .parse()
        .map_err(|_| format!("invalid CIDR address: {text}"))?;
    Ok(net.trunc())
}

fn cidr_v6(value: &Value, name: &str) -> Result<Ipv6Net, String> {
    let Value::String(text) = value else {
        return Err(type_error(value, &format!("Config.{name}"), "ip.IP6Net"));
    };
    let net: Ipv6Net = text
        .parse()
        .map_err(|_| format!("invalid CIDR address: {text}"))?;
    Ok(net.trunc())
}

/// `subnet.ParseConfig`: JSON decoding (IPv4 on by default) and the backend type (`udp` when
/// `Backend` is absent). The error is what flanneld wraps in "error parsing subnet config: …".
pub fn parse(text: &str) -> Result<NetConf, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| go_syntax_error(&e))?;
    let Value::Object(object) = &value else {
        return Err(
            type_error(&value, "", "subnet.Config").replace(" Go struct field  of", " Go value of")
        );
    };
    let enable_ipv4 = bool_field(object, "EnableIPv4", "Config", true)?;
    let enable_ipv6 = bool_field(object, "EnableIPv6", "Config", false)?;
    let network = field(object, "Network")
        .map(|v| cidr_v4(v, "Network"))
        .transpose()?;
    let ipv6_network = field(object, "IPv6Network")
        .map(|v| cidr_v6(v, "IPv6Network"))
        .transpose()?;
    for (name, go_type) in [("SubnetLen", "uint"), ("IPv6SubnetLen", "uint")] {
        if let Some(v) = field(object, name)
            && v.as_u64().is_none()
        {
            return Err(type_error(v, &format!("Config.{name}"), go_type));
        }
    }
    let backend = field(object, "Backend").cloned().unwrap_or(Value::Null);
    let backend_type = match &backend {
        Value::Null => "udp".to_string(),
        Value::Object(b) => match field(b, "Type") {
            None => String::new(),
            Some(Value::String(t)) => t.clone(),
            Some(other) => {
                return Err(format!(
                    "error decoding Backend property of config: {}",
                    type_error(other, ".Type", "string")
                ));
            }
        },
        other => {
            return Err(format!(
                "error decoding Backend property of config: {}",
                type_error(other, "", "struct { Type string }")
                    .replace("Go struct field  of type", "Go value of type")
            ));
        }
    };
    Ok(NetConf {
        enable_ipv4,
        enable_ipv6,
        network,
        ipv6_network,
        backend_type,
        backend,
    })
}

/// Go's `json.Unmarshal` words for a syntax error are close enough to serde's for a log line.
fn go_syntax_error(e: &serde_json::Error) -> String {
    format!("invalid character in JSON: {e}")
}

/// The vxlan backend's decoding of `Backend` (VNI 1 by default), with flanneld's wording:
/// "error decoding VXLAN backend config: …". A VNI the kernel cannot carry fails as creating the
/// device fails.
pub fn vxlan(conf: &NetConf) -> Result<Vxlan, String> {
    let empty = serde_json::Map::new();
    let object = conf.backend.as_object().unwrap_or(&empty);
    let decode = |e: String| format!("error decoding VXLAN backend config: {e}");
    let int = |name: &str, default: i64| -> Result<i64, String> {
        match field(object, name) {
            None => Ok(default),
            Some(Value::Number(n)) => n.as_i64().ok_or_else(|| {
                decode(format!(
                    "json: cannot unmarshal number {n} into Go struct field .{name} of type int"
                ))
            }),
            Some(other) => Err(decode(type_error(other, &format!(".{name}"), "int"))),
        }
    };
    let vni = int("VNI", 1)?;
    let port = int("Port", 0)?;
    let flag = |name: &str| bool_field(object, name, "", false).map_err(decode);
    let (gbp, learning, direct_routing) = (flag("GBP")?, flag("Learning")?, flag("DirectRouting")?);
    if !(0..=0xff_ffff).contains(&vni) {
        return Err(format!(
            "failed to create VXLAN device flannel.{vni}: numerical result out of range (VNI must be 0-16777215)"
        ));
    }
    if !(0..=65535).contains(&port) {
        return Err(format!(
            "failed to create VXLAN device flannel.{vni}: invalid argument (Port {port})"
        ));
    }
    Ok(Vxlan {
        vni: vni as u32,
        port: port as u16,
        gbp,
        learning,
        direct_routing,
    })
}

/// The first address of a subnet, as flanneld writes FLANNEL_SUBNET (`10.244.1.1/24`).
pub fn first_host_v4(net: &Ipv4Net) -> String {
    let ip = Ipv4Addr::from(u32::from(net.network()).wrapping_add(1));
    format!("{ip}/{}", net.prefix_len())
}

pub fn first_host_v6(net: &Ipv6Net) -> String {
    let ip = Ipv6Addr::from(u128::from(net.network()).wrapping_add(1));
    format!("{ip}/{}", net.prefix_len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rendered_config_parses_as_flannel_parses_it() {
        let conf = parse(
            r#"{"Network": "10.244.0.0/16", "EnableNFTables": false, "Backend": {"Type": "vxlan"}}"#,
        )
        .unwrap();
        assert!(conf.enable_ipv4 && !conf.enable_ipv6);
        assert_eq!(conf.network, Some("10.244.0.0/16".parse().unwrap()));
        assert_eq!(conf.backend_type, "vxlan");
        let vx = vxlan(&conf).unwrap();
        assert_eq!(
            (vx.vni, vx.dst_port(), vx.device()),
            (1, 8472, "flannel.1".into())
        );
        let custom =
            parse(r#"{"Network":"10.1.0.0/16","Backend":{"Type":"vxlan","VNI":4096,"Port":4789}}"#)
                .unwrap();
        let vx = vxlan(&custom).unwrap();
        assert_eq!(
            (vx.vni, vx.dst_port(), vx.device()),
            (4096, 4789, "flannel.4096".into())
        );
        assert_eq!(
            parse(r#"{"Network":"10.1.0.0/16"}"#).unwrap().backend_type,
            "udp"
        );
    }

    #[test]
    fn bad_values_fail_with_flannels_words() {
        assert_eq!(
            parse(r#"{"Network": "10.244.0.0/33", "Backend": {"Type": "vxlan"}}"#).unwrap_err(),
            "invalid CIDR address: 10.244.0.0/33"
        );
        assert_eq!(
            parse(r#"{"Network": 10, "Backend": {"Type": "vxlan"}}"#).unwrap_err(),
            "json: cannot unmarshal number into Go struct field Config.Network of type ip.IP4Net"
        );
        let conf =
            parse(r#"{"Network": "10.244.0.0/16", "Backend": {"Type": "vxlan", "VNI": "one"}}"#)
                .unwrap();
        assert_eq!(
            vxlan(&conf).unwrap_err(),
            "error decoding VXLAN backend config: json: cannot unmarshal string into Go struct field .VNI of type int"
        );
        let conf =
            parse(r#"{"Network": "10.244.0.0/16", "Backend": {"Type": "vxlan", "VNI": 16777216}}"#)
                .unwrap();
        assert!(
            vxlan(&conf)
                .unwrap_err()
                .contains("numerical result out of range")
        );
        assert!(parse("{").is_err());
    }

    #[test]
    fn subnet_file_addresses_are_the_first_host() {
        assert_eq!(
            first_host_v4(&"10.244.1.0/24".parse().unwrap()),
            "10.244.1.1/24"
        );
        assert_eq!(
            first_host_v6(&"fd00:10:244:1::/64".parse().unwrap()),
            "fd00:10:244:1::1/64"
        );
    }
}

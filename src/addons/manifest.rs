//! `--pod-network-manifest FILE|URL`: the admin's own (upstream's) pod-network manifest — read from a
//! file or an `https://` URL, recognised as one of the addons, and edited at exactly the fields its
//! `addon.yaml` names (pod CIDR, MTU, interface selection) through typed edits. Documents without an
//! edit are kept byte for byte; the edited ones are re-encoded from their typed objects.

use std::fmt;
use std::time::Duration;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{ConfigMap, Container, EnvVar};
use serde::Serialize;
use serde_json::Value;

use super::AddonObject;
use super::pod_network::Values;
use crate::error::InvalidInput;
use crate::podnet::{self, Addon, Field, FieldValue, Location, ObjectKind, Step};
use crate::render::decode_checked;

/// The flag, as messages name it.
pub const FLAG: &str = "--pod-network-manifest";
/// The largest manifest read (upstream's calico.yaml, the largest, is well under 1 MiB).
const MAX_BYTES: usize = 16 << 20;
/// The bound on fetching a manifest URL (connect + answer).
const FETCH_TIMEOUT: Duration = Duration::from_secs(30);

/// A manifest as read: where from, the addon it is, and its documents.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub location: String,
    pub addon: &'static Addon,
    documents: Vec<Document>,
}

/// One document of the stream: its text as read (with its `---` line) and its value (Null: empty).
#[derive(Debug, Clone)]
struct Document {
    text: String,
    value: Value,
}

/// One field the edit changed; `None` is absent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// `Kind namespace/name`.
    pub object: String,
    /// The field inside it, as addon.yaml names it (`data["net-conf.json"].Network`).
    pub field: String,
    pub old: Option<String>,
    pub new: Option<String>,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = |v: &Option<String>| match v {
            Some(v) => format!("{v:?}"),
            None => "(absent)".to_string(),
        };
        write!(
            f,
            "{} {}: {} → {}",
            self.object,
            self.field,
            shown(&self.old),
            shown(&self.new)
        )
    }
}

/// The manifest after the edit: its text, its objects (typed), and what changed.
#[derive(Debug, Clone)]
pub struct Edited {
    pub location: String,
    pub addon: &'static Addon,
    pub text: String,
    pub objects: Vec<AddonObject>,
    pub changes: Vec<Change>,
}

fn invalid(location: &str, reason: impl Into<String>) -> InvalidInput {
    InvalidInput::one(FLAG, location, reason)
}

/// Reads the manifest at `location` and recognises its addon: the one `--pod-network` chose
/// (`chosen`), which the manifest must be, or else the one whose DaemonSet it holds.
pub fn read(location: &str, chosen: Option<&'static Addon>) -> Result<Manifest, InvalidInput> {
    let text = fetch(location)?;
    let documents = split(&text).map_err(|reason| invalid(location, reason))?;
    let recognised: Vec<&'static Addon> = podnet::all()
        .iter()
        .filter(|a| find(&documents, ObjectKind::DaemonSet, &a.data.daemonset).is_some())
        .collect();
    let addon = match chosen {
        Some(addon) if recognised.iter().any(|a| a.name == addon.name) => addon,
        Some(addon) => {
            let looks_like = match recognised.first() {
                Some(other) => format!(
                    "; it holds {}'s DaemonSet {}: give --pod-network {}",
                    other.name, other.data.daemonset, other.name
                ),
                None => String::new(),
            };
            return Err(invalid(
                location,
                format!(
                    "not a {} manifest for --pod-network {}: it has no DaemonSet {}{looks_like}",
                    addon.name, addon.name, addon.data.daemonset
                ),
            ));
        }
        None => match recognised.as_slice() {
            [one] => one,
            [] => {
                return Err(invalid(
                    location,
                    format!(
                        "recognised as no pod-network addon: it has none of the DaemonSets {}",
                        podnet::all()
                            .iter()
                            .map(|a| format!("{} ({})", a.data.daemonset, a.name))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
            many => {
                return Err(invalid(
                    location,
                    format!(
                        "holds the DaemonSets of several addons ({}): give --pod-network",
                        many.iter().map(|a| a.name).collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
        },
    };
    Ok(Manifest {
        location: location.to_string(),
        addon,
        documents,
    })
}

/// The manifest's text: a file, or an `https://` URL (verified against the system's roots, which
/// `SSL_CERT_FILE` / `SSL_CERT_DIR` may name). Plain `http://` is refused.
fn fetch(location: &str) -> Result<String, InvalidInput> {
    if location.trim().is_empty() {
        return Err(invalid(location, "give a file or an https:// URL"));
    }
    if location.starts_with("http://") {
        return Err(invalid(
            location,
            "plain http is refused: a manifest read without TLS could be changed on the way to the cluster; \
             use an https:// URL or a file",
        ));
    }
    let bytes = if location.starts_with("https://") {
        download(location)
            .map_err(|reason| invalid(location, format!("can not be fetched: {reason}")))?
    } else if location.contains("://") {
        return Err(invalid(location, "only https:// URLs and files are read"));
    } else {
        std::fs::read(location).map_err(|e| invalid(location, format!("can not be read: {e}")))?
    };
    if bytes.len() > MAX_BYTES {
        return Err(invalid(
            location,
            format!("is larger than {MAX_BYTES} bytes"),
        ));
    }
    String::from_utf8(bytes).map_err(|_| invalid(location, "is not UTF-8 text"))
}

fn download(url: &str) -> Result<Vec<u8>, String> {
    // Release downloads redirect (GitHub's to its object store); a redirect may not leave TLS.
    let https_only = reqwest::redirect::Policy::custom(|attempt| {
        if attempt.url().scheme() != "https" {
            let to = attempt.url().to_string();
            attempt.error(format!("refused a redirect to {to}: not https"))
        } else if attempt.previous().len() >= 10 {
            attempt.error("more than 10 redirects")
        } else {
            attempt.follow()
        }
    });
    let client = reqwest::Client::builder()
        .redirect(https_only)
        .connect_timeout(FETCH_TIMEOUT)
        .timeout(FETCH_TIMEOUT)
        .build()
        .map_err(|e| format!("building the HTTPS client: {e}"))?;
    crate::host::runtime::block_on(async {
        let response = client.get(url).send().await.map_err(|e| innermost(&e))?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| innermost(&e))?;
        if !status.is_success() {
            let text: String = String::from_utf8_lossy(&body)
                .trim()
                .chars()
                .take(200)
                .collect();
            return Err(format!("HTTP {}: {text}", status.as_u16()));
        }
        Ok(body.to_vec())
    })
    .map_err(|e| format!("{e:#}"))?
}

/// The innermost cause of a transport error, as curl would say it.
fn innermost(e: &reqwest::Error) -> String {
    let mut source: &dyn std::error::Error = e;
    let mut text = e.to_string();
    while let Some(inner) = source.source() {
        source = inner;
        text = inner.to_string();
    }
    text
}

/// Whether a line starts a YAML document (`---` at the first column; the spec forbids it inside
/// content, so a split there is exact).
fn is_marker(line: &str) -> bool {
    line.strip_prefix("---")
        .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t', '\r', '\n']))
}

/// Splits the stream into its documents, each parsed on its own.
fn split(text: &str) -> Result<Vec<Document>, String> {
    let mut chunks: Vec<String> = vec![String::new()];
    for line in text.split_inclusive('\n') {
        if is_marker(line) && !chunks.last().is_some_and(String::is_empty) {
            chunks.push(String::new());
        }
        if let Some(last) = chunks.last_mut() {
            last.push_str(line);
        }
    }
    let mut documents = Vec::new();
    for (index, chunk) in chunks.into_iter().enumerate() {
        let parsed = crate::yaml::documents(&chunk)
            .map_err(|e| format!("is not YAML: document {}: {e}", index + 1))?;
        let value = match parsed.len() {
            0 => Value::Null,
            1 => parsed.into_iter().next().unwrap_or(Value::Null),
            _ => return Err(format!("document {} is not one YAML document", index + 1)),
        };
        if !(value.is_null() || value.is_object()) {
            return Err(format!("document {} is not an object", index + 1));
        }
        documents.push(Document { text: chunk, value });
    }
    if documents.iter().all(|d| d.value.is_null()) {
        return Err("holds no objects".to_string());
    }
    Ok(documents)
}

/// A `List` document's items (upstream's weave manifest is one).
fn is_list(value: &Value) -> bool {
    value["kind"].as_str().is_some_and(|k| k.ends_with("List")) && value["items"].is_array()
}

/// Where an object is: the document, and the item of a `List` document.
type Place = (usize, Option<usize>);

/// The first object of `kind` named `name`.
fn find(documents: &[Document], kind: ObjectKind, name: &str) -> Option<Place> {
    let matches = |v: &Value| v["kind"] == kind.name() && v["metadata"]["name"] == name;
    documents.iter().enumerate().find_map(|(d, doc)| {
        if is_list(&doc.value) {
            let items = doc.value["items"].as_array()?;
            items.iter().position(matches).map(|i| (d, Some(i)))
        } else {
            matches(&doc.value).then_some((d, None))
        }
    })
}

impl Manifest {
    fn object(&self, (document, item): Place) -> &Value {
        let value = &self.documents[document].value;
        match item {
            Some(i) => &value["items"][i],
            None => value,
        }
    }

    fn object_mut(&mut self, (document, item): Place) -> Option<&mut Value> {
        let value = &mut self.documents[document].value;
        match item {
            Some(i) => value.get_mut("items")?.get_mut(i),
            None => Some(value),
        }
    }

    /// Sets every field of the addon's `fields` from `values` (the model's pod subnets, pod MTU and
    /// interface selection), then decodes every object into its type.
    pub fn edit(mut self, values: &Values) -> Result<Edited, InvalidInput> {
        let addon = self.addon;
        let location = self.location.clone();
        let fields = &addon.data.fields;
        let carries = |wanted: FieldValue| fields.all().any(|f| f.value == wanted);
        for (subnet, value, family) in [
            (&values.ipv4_cidr, FieldValue::Ipv4Cidr, "IPv4"),
            (&values.ipv6_cidr, FieldValue::Ipv6Cidr, "IPv6"),
        ] {
            if let Some(subnet) = subnet
                && !carries(value)
            {
                return Err(invalid(
                    &location,
                    format!(
                        "kubestrap cannot set the {family} pod subnet {subnet} in {}'s manifest (no field of \
                         addons/{}/addon.yaml carries it); use the built-in manifest (leave out {FLAG})",
                        addon.name, addon.name
                    ),
                ));
            }
        }
        let mut changes = Vec::new();
        let mut edited = vec![false; self.documents.len()];
        // Every field is looked up, also those left alone (an MTU init could not read): whether the
        // manifest is refused does not depend on this host.
        for field in fields.all() {
            let wanted = wanted(field.value, values);
            let place = find(&self.documents, field.kind, &field.name).ok_or_else(|| {
                invalid(
                    &location,
                    format!(
                        "the manifest has no {}/{}, where {} must be set",
                        field.kind.name(),
                        field.name,
                        describe(field)
                    ),
                )
            })?;
            let object = self.object(place);
            let named = format!(
                "{} {}{}",
                field.kind.name(),
                object["metadata"]["namespace"]
                    .as_str()
                    .map(|ns| format!("{ns}/"))
                    .unwrap_or_default(),
                field.name
            );
            let (new_object, change) = edit_object(object, field, &wanted)
                .map_err(|reason| invalid(&location, format!("{}: {reason}", describe(field))))?;
            if let Some((old, new)) = change {
                changes.push(Change {
                    object: named,
                    field: field_path(field),
                    old,
                    new,
                });
                if let Some(slot) = self.object_mut(place) {
                    *slot = new_object;
                }
                edited[place.0] = true;
            }
        }
        let mut text = String::new();
        let mut objects = Vec::new();
        for (document, was_edited) in self.documents.iter().zip(&edited) {
            if *was_edited {
                if document.text.starts_with("---") {
                    text.push_str("---\n");
                }
                let encoded = crate::yaml::to_string(&document.value).map_err(|e| {
                    invalid(&location, format!("re-encoding an edited document: {e}"))
                })?;
                text.push_str(&encoded);
            } else {
                text.push_str(&document.text);
                if !document.text.ends_with('\n') {
                    text.push('\n');
                }
            }
            let items: Vec<&Value> = if is_list(&document.value) {
                document.value["items"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .collect()
            } else if document.value.is_null() {
                Vec::new()
            } else {
                vec![&document.value]
            };
            for item in items {
                objects.push(
                    AddonObject::decode(&location, item)
                        .map_err(|e| invalid(&location, describe_object_error(item, &e)))?,
                );
            }
        }
        Ok(Edited {
            location,
            addon,
            text,
            objects,
            changes,
        })
    }
}

fn describe_object_error(object: &Value, error: &crate::render::RenderError) -> String {
    let reason = match error {
        crate::render::RenderError::Typed { source, .. } => source.to_string(),
        crate::render::RenderError::Template { message, .. }
        | crate::render::RenderError::Yaml { message, .. } => message.clone(),
    };
    format!(
        "{} {}: {reason}",
        object["kind"].as_str().unwrap_or("(no kind)"),
        object["metadata"]["name"].as_str().unwrap_or("(no name)")
    )
}

/// The field inside its object, for messages and the change list.
fn field_path(field: &Field) -> String {
    match &field.at {
        Location::Data(key) => format!("data[{key:?}]"),
        Location::DataJson { key, path } => {
            let mut text = format!("data[{key:?}]");
            for step in path {
                match step {
                    Step::Key(k) => text.push_str(&format!(".{k}")),
                    Step::Element(m) => text.push_str(&format!(
                        "[{}]",
                        m.iter()
                            .map(|(k, v)| format!("{k}={v}"))
                            .collect::<Vec<_>>()
                            .join(",")
                    )),
                }
            }
            text
        }
        Location::Env { container, name } => format!("containers[{container}].env[{name}]"),
        Location::Arg { container, flags } => {
            format!("containers[{container}].args[{}]", flags.join("|"))
        }
    }
}

/// `Kind/name field`, as addon.yaml names it.
fn describe(field: &Field) -> String {
    format!("{}/{} {}", field.kind.name(), field.name, field_path(field))
}

/// What goes into a field.
#[derive(Debug, Clone, PartialEq)]
enum Wanted {
    Keep,
    Remove,
    Set(Value),
}

fn wanted(value: FieldValue, values: &Values) -> Wanted {
    let text = |s: &str| Wanted::Set(Value::String(s.to_string()));
    let interface = &values.interface;
    let method = |ipv6: bool| match (interface.kind, &interface.cidr, &interface.address) {
        _ if interface.ipv6 != ipv6 => Wanted::Keep,
        ("cidr", Some(cidr), _) => text(&format!("cidr={cidr}")),
        ("can-reach", _, Some(address)) => text(&format!("can-reach={address}")),
        _ => Wanted::Keep,
    };
    match value {
        FieldValue::Ipv4Cidr => values.ipv4_cidr.as_deref().map_or(Wanted::Remove, text),
        FieldValue::Ipv6Cidr => values.ipv6_cidr.as_deref().map_or(Wanted::Remove, text),
        FieldValue::Ipv4Disabled if values.ipv4_cidr.is_none() => Wanted::Set(Value::Bool(false)),
        FieldValue::Ipv4Disabled => Wanted::Remove,
        FieldValue::Ipv6Enabled if values.ipv6_cidr.is_some() => Wanted::Set(Value::Bool(true)),
        FieldValue::Ipv6Enabled => Wanted::Remove,
        FieldValue::Mtu => values
            .mtu
            .map_or(Wanted::Keep, |m| Wanted::Set(Value::from(m))),
        FieldValue::IfaceFlag => match (interface.kind, &interface.regex, &interface.address) {
            ("cidr", Some(regex), _) => text(&format!("--iface-regex={regex}")),
            ("can-reach", _, Some(address)) => text(&format!("--iface-can-reach={address}")),
            _ => Wanted::Keep,
        },
        FieldValue::AutodetectionIpv4 => method(false),
        FieldValue::AutodetectionIpv6 => method(true),
    }
}

/// A value as the text a ConfigMap key, an environment variable or an argument holds.
fn as_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// (old, new) of a field when the edit changes it.
type Changed = Option<(Option<String>, Option<String>)>;

/// Edits one field of `object` through its type; returns the new object and the change, if any.
fn edit_object(object: &Value, field: &Field, wanted: &Wanted) -> Result<(Value, Changed), String> {
    let kind = field.kind.name();
    let (encoded, change) = match field.kind {
        ObjectKind::ConfigMap => {
            let mut typed: ConfigMap = decode_checked(object, kind).map_err(|e| e.to_string())?;
            let change = edit_config_map(&mut typed, field, wanted)?;
            (serde_json::to_value(&typed), change)
        }
        ObjectKind::DaemonSet => {
            let mut typed: DaemonSet = decode_checked(object, kind).map_err(|e| e.to_string())?;
            let change = edit_daemon_set(&mut typed, field, wanted)?;
            (serde_json::to_value(&typed), change)
        }
    };
    let encoded = encoded.map_err(|e| format!("re-encoding the {kind}: {e}"))?;
    Ok((encoded, change))
}

fn absent_but_required(field: &Field, wanted: &Wanted, present: bool) -> Result<(), String> {
    if field.required && !present && *wanted != Wanted::Remove {
        return Err(
            "the manifest does not set it (upstream's manifest does): is this the addon's manifest?"
                .to_string(),
        );
    }
    Ok(())
}

fn edit_config_map(map: &mut ConfigMap, field: &Field, wanted: &Wanted) -> Result<Changed, String> {
    match &field.at {
        Location::Data(key) => {
            let data = map.data.get_or_insert_with(Default::default);
            let old = data.get(key).cloned();
            absent_but_required(field, wanted, old.is_some())?;
            let new = match wanted {
                Wanted::Keep => return Ok(None),
                Wanted::Remove => None,
                Wanted::Set(v) => Some(as_text(v)),
            };
            if old == new {
                return Ok(None);
            }
            match &new {
                Some(v) => data.insert(key.clone(), v.clone()),
                None => data.remove(key),
            };
            Ok(Some((old, new)))
        }
        Location::DataJson { key, path } => {
            let text = map
                .data
                .as_ref()
                .and_then(|d| d.get(key))
                .ok_or_else(|| format!("the ConfigMap has no data key {key:?}"))?;
            let mut document: Value = serde_json::from_str(text)
                .map_err(|e| format!("data[{key:?}] is not JSON: {e}"))?;
            let Some((last, parents)) = path.split_last() else {
                return Err("an empty path".to_string());
            };
            let Step::Key(last) = last else {
                return Err("the path must end in a key".to_string());
            };
            let mut parent = &mut document;
            for (i, step) in parents.iter().enumerate() {
                let at = || format!("{:?}", &path[..=i]);
                parent = match step {
                    Step::Key(k) => parent.get_mut(k.as_str()),
                    Step::Element(wanted) => parent.as_array_mut().and_then(|items| {
                        items
                            .iter_mut()
                            .find(|item| wanted.iter().all(|(k, v)| item[k.as_str()] == v.as_str()))
                    }),
                }
                .ok_or_else(|| format!("data[{key:?}] has nothing at {}", at()))?;
            }
            let object = parent
                .as_object_mut()
                .ok_or_else(|| format!("data[{key:?}]: {last:?} is not in an object"))?;
            let old = object.get(last).cloned();
            absent_but_required(field, wanted, old.is_some())?;
            let new = match wanted {
                Wanted::Keep => return Ok(None),
                Wanted::Remove => None,
                Wanted::Set(v) => Some(v.clone()),
            };
            if old == new {
                return Ok(None);
            }
            match &new {
                Some(v) => object.insert(last.clone(), v.clone()),
                None => object.remove(last),
            };
            let mut encoded = serde_json::to_string_pretty(&document)
                .map_err(|e| format!("re-encoding data[{key:?}]: {e}"))?;
            if text.ends_with('\n') {
                encoded.push('\n');
            }
            if let Some(data) = map.data.as_mut() {
                data.insert(key.clone(), encoded);
            }
            Ok(Some((old.as_ref().map(as_text), new.as_ref().map(as_text))))
        }
        Location::Env { .. } | Location::Arg { .. } => {
            Err("a ConfigMap has no containers: addon.yaml names the wrong kind".to_string())
        }
    }
}

fn container<'a>(set: &'a mut DaemonSet, name: &str) -> Result<&'a mut Container, String> {
    let pod = set
        .spec
        .as_mut()
        .and_then(|s| s.template.spec.as_mut())
        .ok_or("the DaemonSet has no pod template spec")?;
    pod.containers
        .iter_mut()
        .chain(pod.init_containers.iter_mut().flatten())
        .find(|c| c.name == name)
        .ok_or_else(|| format!("the DaemonSet has no container {name:?}"))
}

fn edit_daemon_set(set: &mut DaemonSet, field: &Field, wanted: &Wanted) -> Result<Changed, String> {
    match &field.at {
        Location::Env {
            container: name,
            name: variable,
        } => {
            let container = container(set, name)?;
            let env = container.env.get_or_insert_with(Vec::new);
            let at = env.iter().position(|e| e.name == *variable);
            if let Some(i) = at
                && env[i].value_from.is_some()
            {
                return Err(format!(
                    "{variable} is set from valueFrom; kubestrap sets only plain values"
                ));
            }
            let old = at.and_then(|i| env[i].value.clone());
            absent_but_required(field, wanted, at.is_some())?;
            let new = match wanted {
                Wanted::Keep => return Ok(None),
                Wanted::Remove => None,
                Wanted::Set(v) => Some(as_text(v)),
            };
            if old == new && at.is_some() == new.is_some() {
                return Ok(None);
            }
            match (&new, at) {
                (Some(v), Some(i)) => env[i].value = Some(v.clone()),
                (Some(v), None) => env.push(EnvVar {
                    name: variable.clone(),
                    value: Some(v.clone()),
                    value_from: None,
                }),
                (None, Some(i)) => {
                    env.remove(i);
                }
                (None, None) => {}
            }
            Ok(Some((old, new)))
        }
        Location::Arg {
            container: name,
            flags,
        } => {
            let container = container(set, name)?;
            let args = container.args.get_or_insert_with(Vec::new);
            let flag_of = |arg: &str| arg.split('=').next().unwrap_or_default().to_string();
            let mut old = Vec::new();
            let mut first = None;
            let mut i = 0;
            while i < args.len() {
                if flags.contains(&flag_of(&args[i])) {
                    first.get_or_insert(i);
                    let arg = args.remove(i);
                    // `--flag value` as two arguments
                    if !arg.contains('=') && i < args.len() {
                        let value = args.remove(i);
                        old.push(format!("{arg}={value}"));
                    } else {
                        old.push(arg);
                    }
                } else {
                    i += 1;
                }
            }
            let old = (!old.is_empty()).then(|| old.join(" "));
            absent_but_required(field, wanted, old.is_some())?;
            let new = match wanted {
                Wanted::Keep => return Ok(None),
                Wanted::Remove => None,
                Wanted::Set(v) => Some(as_text(v)),
            };
            if let Some(arg) = &new {
                args.insert(first.unwrap_or(args.len()), arg.clone());
            }
            if old == new {
                return Ok(None);
            }
            Ok(Some((old, new)))
        }
        Location::Data(_) | Location::DataJson { .. } => {
            Err("a DaemonSet has no data: addon.yaml names the wrong kind".to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn documents_split_at_column_zero_markers_only() {
        let text = "# leading comment\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata:\n  x: |\n    ---\n    not a marker\n--- \n---\n# only a comment\n---\napiVersion: v1\nkind: List\nitems: []\n";
        let docs = split(text).unwrap();
        assert_eq!(docs.len(), 4);
        assert_eq!(docs[0].value["data"]["x"], "---\nnot a marker\n");
        assert!(docs[1].value.is_null() && docs[2].value.is_null());
        assert!(is_list(&docs[3].value));
        let joined: String = docs.iter().map(|d| d.text.as_str()).collect();
        assert_eq!(joined, text, "the split loses nothing");
        assert!(
            split("---\n# nothing\n")
                .unwrap_err()
                .contains("no objects")
        );
        assert!(split("- a\n- b\n").unwrap_err().contains("not an object"));
    }

    fn flannel_arg_field() -> Field {
        podnet::get("flannel").unwrap().data.fields.interface[0].clone()
    }

    fn daemonset(args: &[&str]) -> DaemonSet {
        serde_json::from_value(json!({
            "metadata": {"name": "kube-flannel-ds"},
            "spec": {"selector": {}, "template": {"spec": {"containers": [
                {"name": "kube-flannel", "args": args}
            ]}}}
        }))
        .unwrap()
    }

    fn args(set: &DaemonSet) -> Vec<String> {
        set.spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap()
            .containers[0]
            .args
            .clone()
            .unwrap()
    }

    #[test]
    fn interface_flags_are_replaced_in_place_in_either_form() {
        let field = flannel_arg_field();
        let wanted = Wanted::Set(json!("--iface-can-reach=10.0.0.1"));
        let mut set = daemonset(&[
            "--ip-masq",
            "--iface",
            "eth1",
            "--kube-subnet-mgr",
            "--iface-regex=x",
        ]);
        let change = edit_daemon_set(&mut set, &field, &wanted).unwrap();
        assert_eq!(
            args(&set),
            [
                "--ip-masq",
                "--iface-can-reach=10.0.0.1",
                "--kube-subnet-mgr"
            ]
        );
        assert_eq!(
            change,
            Some((
                Some("--iface=eth1 --iface-regex=x".to_string()),
                Some("--iface-can-reach=10.0.0.1".to_string())
            ))
        );
        // already so: no change
        let mut same = daemonset(&["--iface-can-reach=10.0.0.1"]);
        assert_eq!(edit_daemon_set(&mut same, &field, &wanted).unwrap(), None);
    }
}

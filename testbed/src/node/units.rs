//! systemd unit files as systemd reads them for a simple service: the unit and its drop-ins
//! (`<unit>.d/*.conf`), ExecStart (an empty assignment resets it), Environment, EnvironmentFile,
//! Restart and RestartSec, and the command-line expansion of `$VAR` and `${VAR}`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};

/// Where unit files are searched, highest priority first.
pub const UNIT_DIRS: &[&str] = &[
    "/etc/systemd/system",
    "/run/systemd/system",
    "/usr/local/lib/systemd/system",
    "/usr/lib/systemd/system",
    "/lib/systemd/system",
];

#[derive(Debug, Clone, PartialEq)]
pub enum Restart {
    No,
    Always,
    OnFailure,
}

#[derive(Debug, Clone)]
pub struct Unit {
    pub name: String,
    pub path: PathBuf,
    pub description: String,
    pub exec_start: Option<String>,
    pub environment: Vec<(String, String)>,
    pub environment_files: Vec<(PathBuf, bool)>,
    pub restart: Restart,
    pub restart_sec: Duration,
    pub wanted_by: Vec<String>,
}

/// `kubelet` → `kubelet.service`.
pub fn unit_name(name: &str) -> String {
    if name.contains('.') {
        name.to_string()
    } else {
        format!("{name}.service")
    }
}

pub fn find_unit(name: &str) -> Option<PathBuf> {
    UNIT_DIRS
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

/// Splits a command line into words with systemd's quoting rules (single and double quotes,
/// backslash escapes).
pub fn split_words(line: &str) -> Result<Vec<String>> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), '\\') => current.push(chars.next().unwrap_or('\\')),
            (Some(_), c) => current.push(c),
            (None, '"') | (None, '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (None, '\\') => {
                current.push(chars.next().unwrap_or('\\'));
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut current));
                    in_word = false;
                }
            }
            (None, c) => {
                current.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        bail!("unbalanced quoting in {line:?}");
    }
    if in_word {
        words.push(current);
    }
    Ok(words)
}

/// Expands `$VAR` (split into words) and `${VAR}` (one word) in ExecStart words.
pub fn expand(words: &[String], env: &BTreeMap<String, String>) -> Vec<String> {
    let mut out = Vec::new();
    for word in words {
        if let Some(name) = word
            .strip_prefix('$')
            .filter(|n| !n.starts_with('{') && !n.is_empty())
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            if let Some(value) = env.get(name) {
                out.extend(value.split_whitespace().map(str::to_string));
            }
            continue;
        }
        let mut expanded = String::new();
        let mut rest = word.as_str();
        while let Some(start) = rest.find("${") {
            expanded.push_str(&rest[..start]);
            match rest[start + 2..].find('}') {
                Some(end) => {
                    let name = &rest[start + 2..start + 2 + end];
                    expanded.push_str(env.get(name).map(String::as_str).unwrap_or_default());
                    rest = &rest[start + 3 + end..];
                }
                None => {
                    expanded.push_str(&rest[start..]);
                    rest = "";
                }
            }
        }
        expanded.push_str(rest);
        out.push(expanded);
    }
    out
}

/// Parses an EnvironmentFile: `KEY=VALUE` lines, optional quotes, `#` comments.
pub fn parse_env_file(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(';'))
        .filter_map(|l| {
            let (k, v) = l.split_once('=')?;
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|x| x.strip_suffix('"'))
                .or_else(|| v.strip_prefix('\'').and_then(|x| x.strip_suffix('\'')))
                .unwrap_or(v);
            Some((k.trim().to_string(), v.to_string()))
        })
        .collect()
}

fn apply_file(unit: &mut Unit, text: &str) -> Result<()> {
    let mut section = String::new();
    for raw in text.lines() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if line.starts_with('[') && line.ends_with(']') {
            section = line[1..line.len() - 1].to_string();
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let (key, value) = (key.trim(), value.trim());
        match (section.as_str(), key) {
            ("Unit", "Description") => unit.description = value.to_string(),
            ("Service", "ExecStart") => {
                unit.exec_start = (!value.is_empty()).then(|| value.to_string())
            }
            ("Service", "Environment") => {
                for assignment in split_words(value)? {
                    if let Some((k, v)) = assignment.split_once('=') {
                        unit.environment.push((k.to_string(), v.to_string()));
                    }
                }
            }
            ("Service", "EnvironmentFile") => {
                let (optional, path) = match value.strip_prefix('-') {
                    Some(p) => (true, p),
                    None => (false, value),
                };
                unit.environment_files.push((PathBuf::from(path), optional));
            }
            ("Service", "Restart") => {
                unit.restart = match value {
                    "always" => Restart::Always,
                    "on-failure" | "on-abnormal" | "on-abort" => Restart::OnFailure,
                    _ => Restart::No,
                }
            }
            ("Service", "RestartSec") => {
                let seconds = value.trim_end_matches('s');
                unit.restart_sec = seconds
                    .parse::<f64>()
                    .map(Duration::from_secs_f64)
                    .or_else(|_| {
                        value
                            .parse::<kubestrap::config::duration::GoDuration>()
                            .map(|d| d.as_duration())
                    })
                    .unwrap_or(Duration::from_millis(100));
            }
            ("Install", "WantedBy") => unit
                .wanted_by
                .extend(value.split_whitespace().map(str::to_string)),
            _ => {}
        }
    }
    Ok(())
}

/// Loads a unit with its drop-ins from every unit directory (sorted by file name).
pub fn load(name: &str) -> Result<Unit> {
    let path = find_unit(name).ok_or_else(|| anyhow!("Unit {name} not found."))?;
    let mut unit = Unit {
        name: name.to_string(),
        path: path.clone(),
        description: String::new(),
        exec_start: None,
        environment: Vec::new(),
        environment_files: Vec::new(),
        restart: Restart::No,
        restart_sec: Duration::from_millis(100),
        wanted_by: Vec::new(),
    };
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
    apply_file(&mut unit, &text)?;
    let mut dropins: BTreeMap<String, PathBuf> = BTreeMap::new();
    for dir in UNIT_DIRS.iter().rev() {
        let d = Path::new(dir).join(format!("{name}.d"));
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let file = entry.file_name().to_string_lossy().to_string();
            if file.ends_with(".conf") {
                dropins.insert(file, entry.path());
            }
        }
    }
    for path in dropins.values() {
        apply_file(&mut unit, &std::fs::read_to_string(path)?)?;
    }
    Ok(unit)
}

impl Unit {
    /// The environment the service gets: Environment= then EnvironmentFile= (later wins).
    pub fn environment(&self) -> Result<BTreeMap<String, String>> {
        let mut env: BTreeMap<String, String> = BTreeMap::new();
        env.insert(
            "PATH".into(),
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        );
        env.insert("LANG".into(), "C.UTF-8".into());
        env.extend(self.environment.iter().cloned());
        for (path, optional) in &self.environment_files {
            match std::fs::read_to_string(path) {
                Ok(text) => env.extend(parse_env_file(&text)),
                Err(_) if *optional => {}
                Err(e) => bail!("Failed to load environment files: {}: {e}", path.display()),
            }
        }
        Ok(env)
    }

    /// The command line to run, expanded.
    pub fn command(&self) -> Result<Vec<String>> {
        let line = self
            .exec_start
            .as_deref()
            .ok_or_else(|| anyhow!("{} has no ExecStart= setting", self.name))?;
        let env = self.environment()?;
        let words = split_words(line)?;
        let mut argv = expand(&words, &env);
        if let Some(first) = argv.first_mut() {
            *first = first.trim_start_matches(['-', '@', '+', '!']).to_string();
        }
        Ok(argv)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubeadm_dropin_expansion() {
        let mut unit = Unit {
            name: "kubelet.service".into(),
            path: PathBuf::new(),
            description: String::new(),
            exec_start: None,
            environment: vec![],
            environment_files: vec![],
            restart: Restart::No,
            restart_sec: Duration::ZERO,
            wanted_by: vec![],
        };
        apply_file(
            &mut unit,
            "[Service]\nExecStart=/usr/local/bin/kubelet\nRestart=always\nRestartSec=10\n",
        )
        .unwrap();
        apply_file(
            &mut unit,
            "[Service]\nEnvironment=\"KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf --kubeconfig=/etc/kubernetes/kubelet.conf\"\nEnvironment=\"KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml\"\nEnvironmentFile=-/nonexistent/kubeadm-flags.env\nExecStart=\nExecStart=/usr/local/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS\n",
        )
        .unwrap();
        assert_eq!(unit.restart, Restart::Always);
        assert_eq!(unit.restart_sec, Duration::from_secs(10));
        assert_eq!(
            unit.command().unwrap(),
            vec![
                "/usr/local/bin/kubelet",
                "--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf",
                "--kubeconfig=/etc/kubernetes/kubelet.conf",
                "--config=/var/lib/kubelet/config.yaml"
            ]
        );
    }

    #[test]
    fn env_files_and_braced_variables() {
        let env = parse_env_file(
            "# comment\nKUBELET_KUBEADM_ARGS=\"--node-ip=10.0.0.2 --hostname-override=a\"\nX='y z'\n",
        );
        assert_eq!(env[0].1, "--node-ip=10.0.0.2 --hostname-override=a");
        assert_eq!(env[1].1, "y z");
        let map: BTreeMap<String, String> = env.into_iter().collect();
        let words = expand(
            &["--x=${X}".to_string(), "$KUBELET_KUBEADM_ARGS".to_string()],
            &map,
        );
        assert_eq!(
            words,
            vec!["--x=y z", "--node-ip=10.0.0.2", "--hostname-override=a"]
        );
    }
}

//! kubeadm's `--patches DIR` (K: `util/patches/patches.go`): patch files named
//! `target[suffix][+patchtype].{json,yaml}`, applied to generated objects in file-name order.
//!
//! Patch types: `strategic` (the default; Kubernetes strategic merge, see [`strategic`]), `merge`
//! (RFC 7386) and `json` (RFC 6902). A file may hold several YAML documents; each is one patch.
//! Sub-directories are ignored. Files with another extension or an unknown target are ignored
//! with a notice; a `+` followed by an unknown patch type is an error.

pub mod strategic;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use anyhow::Context;
use serde_json::Value;

use crate::error::InvalidInput;
use crate::output::Ui;
pub use strategic::Schema;

/// Every target kubeadm knows; files for targets another part of kubestrap patches are
/// recognised (not reported as unknown) and left to that part.
pub const KNOWN_TARGETS: [&str; 6] = [
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubeletconfiguration",
    "corednsdeployment",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    Strategic,
    Merge,
    Json,
}

impl PatchType {
    /// The media type kubeadm names in its `[patches] Applied patch of type …` line.
    pub fn media_type(self) -> &'static str {
        match self {
            PatchType::Strategic => "application/strategic-merge-patch+json",
            PatchType::Merge => "application/merge-patch+json",
            PatchType::Json => "application/json-patch+json",
        }
    }
}

/// One patch file: its target, type and documents (each converted to JSON).
#[derive(Debug, Clone, PartialEq)]
pub struct PatchFile {
    pub file_name: String,
    pub target: String,
    pub patch_type: PatchType,
    pub patches: Vec<Value>,
}

/// The usable patch files of a directory, in file-name order.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchSet {
    pub dir: PathBuf,
    pub files: Vec<PatchFile>,
}

/// What a file name says: a patch for `target` of `patch_type`, or a reason to ignore the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileName {
    Patch {
        target: String,
        patch_type: PatchType,
    },
    Ignored(String),
}

/// Parses a patch file name as kubeadm does. Errors on `+` without a known patch type.
pub fn parse_file_name(name: &str) -> Result<FileName, String> {
    let Some(stem) = name
        .strip_suffix(".json")
        .or_else(|| name.strip_suffix(".yaml"))
        .filter(|stem| !stem.is_empty())
    else {
        return Ok(FileName::Ignored(
            "the file extension must be one of [json yaml]".to_string(),
        ));
    };
    // kubeadm's regexp `^(target)([^.+\n]*)?(\+)?(patchtype)?`, alternatives tried in list order.
    let Some(target) = KNOWN_TARGETS.iter().find(|t| stem.starts_with(**t)) else {
        return Ok(FileName::Ignored(format!(
            "unknown target, must be one of [{}]",
            KNOWN_TARGETS.join(" ")
        )));
    };
    let rest = &stem[target.len()..];
    let suffix_len = rest.find(['.', '+', '\n']).unwrap_or(rest.len());
    let after_suffix = &rest[suffix_len..];
    let patch_type = match after_suffix.strip_prefix('+') {
        None => PatchType::Strategic,
        Some(kind) if kind.starts_with("json") => PatchType::Json,
        Some(kind) if kind.starts_with("merge") => PatchType::Merge,
        Some(kind) if kind.starts_with("strategic") => PatchType::Strategic,
        Some(_) => {
            return Err(
                "unknown or missing patch type after '+', must be one of [json merge strategic]"
                    .to_string(),
            );
        }
    };
    Ok(FileName::Patch {
        target: target.to_string(),
        patch_type,
    })
}

impl PatchSet {
    /// Reads every patch file of `dir` and prints kubeadm's `[patches]` lines.
    pub fn read(dir: &Path, ui: &Ui) -> anyhow::Result<PatchSet> {
        ui.line(format!(
            "[patches] Reading patches from path {:?}",
            dir.display().to_string()
        ));
        let mut entries: Vec<(String, PathBuf)> = std::fs::read_dir(dir)
            .with_context(|| format!("could not list patch files for path {:?}", dir.display()))?
            .map(|entry| entry.map(|e| (e.file_name().to_string_lossy().into_owned(), e.path())))
            .collect::<Result<_, _>>()
            .with_context(|| format!("could not list patch files for path {:?}", dir.display()))?;
        entries.sort();
        let mut files = Vec::new();
        let mut ignored = Vec::new();
        for (name, path) in entries {
            if path.is_dir() {
                continue;
            }
            let (target, patch_type) = match parse_file_name(&name) {
                Err(reason) => {
                    return Err(InvalidInput::one("--patches", path.display(), reason).into());
                }
                Ok(FileName::Ignored(reason)) => {
                    ui.line(format!("[patches] Ignoring file {name:?}: {reason}"));
                    ignored.push(name);
                    continue;
                }
                Ok(FileName::Patch { target, patch_type }) => (target, patch_type),
            };
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("could not read the file {:?}", path.display()))?;
            if text.is_empty() {
                ui.line(format!("[patches] Ignoring empty file: {name:?}"));
                ignored.push(name);
                continue;
            }
            let patches = crate::yaml::documents(&text).map_err(|e| {
                InvalidInput::one(
                    "--patches",
                    path.display(),
                    format!("could not convert patch to JSON: {e}"),
                )
            })?;
            files.push(PatchFile {
                file_name: name,
                target,
                patch_type,
                patches,
            });
        }
        if !files.is_empty() {
            let names: Vec<&str> = files.iter().map(|f| f.file_name.as_str()).collect();
            ui.line(format!(
                "[patches] Found the following patch files: [{}]",
                names.join(" ")
            ));
        }
        if !ignored.is_empty() {
            ui.line(format!(
                "[patches] Ignored the following files: [{}]",
                ignored.join(" ")
            ));
        }
        Ok(PatchSet {
            dir: dir.to_path_buf(),
            files,
        })
    }

    /// The patch set of `dir`, read once per process (kubeadm caches it the same way, so the
    /// `Reading patches` lines appear once per command).
    pub fn cached(dir: &Path, ui: &Ui) -> anyhow::Result<Arc<PatchSet>> {
        static CACHE: OnceLock<Mutex<BTreeMap<PathBuf, Arc<PatchSet>>>> = OnceLock::new();
        let cache = CACHE.get_or_init(Default::default);
        let mut cache = cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(set) = cache.get(dir) {
            return Ok(Arc::clone(set));
        }
        let set = Arc::new(PatchSet::read(dir, ui)?);
        cache.insert(dir.to_path_buf(), Arc::clone(&set));
        Ok(set)
    }

    /// Applies every patch for `target` to `doc`, in file order, printing one line per patch.
    pub fn apply(
        &self,
        target: &str,
        doc: &mut Value,
        schema: Schema,
        ui: &Ui,
    ) -> anyhow::Result<()> {
        for file in self.files.iter().filter(|f| f.target == target) {
            for patch in &file.patches {
                apply_one(doc, patch, file.patch_type, schema).with_context(|| {
                    format!(
                        "could not apply the patch in {:?} of type {:?} to target {target:?}",
                        self.dir.join(&file.file_name).display(),
                        file.patch_type.media_type()
                    )
                })?;
                ui.line(format!(
                    "[patches] Applied patch of type {:?} to target {target:?}",
                    file.patch_type.media_type()
                ));
            }
        }
        Ok(())
    }
}

/// Checks a patch directory's file names before anything is written (exit 2 on a bad one).
pub fn check_dir(dir: &Path) -> Result<(), InvalidInput> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        InvalidInput::one(
            "--patches",
            dir.display(),
            format!("not a readable directory: {e}"),
        )
    })?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.path().is_file()
            && let Err(reason) = parse_file_name(&name)
        {
            return Err(InvalidInput::one(
                "--patches",
                entry.path().display(),
                reason,
            ));
        }
    }
    Ok(())
}

/// Applies one patch document of the given type.
pub fn apply_one(
    doc: &mut Value,
    patch: &Value,
    patch_type: PatchType,
    schema: Schema,
) -> anyhow::Result<()> {
    match patch_type {
        PatchType::Json => {
            let ops: json_patch::Patch = serde_json::from_value(patch.clone())
                .context("not an RFC 6902 JSON patch (a list of operations)")?;
            json_patch::patch(doc, &ops)?;
        }
        PatchType::Merge => json_patch::merge(doc, patch),
        PatchType::Strategic => {
            *doc = strategic::merge(doc, patch, schema)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn file_names_follow_kubeadm() {
        for (name, target, patch_type) in [
            ("etcd.yaml", "etcd", PatchType::Strategic),
            (
                "kube-apiserver0+merge.yaml",
                "kube-apiserver",
                PatchType::Merge,
            ),
            (
                "kube-scheduler-anything+json.json",
                "kube-scheduler",
                PatchType::Json,
            ),
            (
                "kube-controller-manager+strategic.json",
                "kube-controller-manager",
                PatchType::Strategic,
            ),
            ("etcd.v2.yaml", "etcd", PatchType::Strategic),
        ] {
            let expected = FileName::Patch {
                target: target.to_string(),
                patch_type,
            };
            assert_eq!(parse_file_name(name), Ok(expected), "{name}");
        }
        assert!(matches!(
            parse_file_name("etcd.txt"),
            Ok(FileName::Ignored(_))
        ));
        assert!(matches!(
            parse_file_name("coredns.yaml"),
            Ok(FileName::Ignored(_))
        ));
        assert!(parse_file_name("etcd+weird.yaml").is_err());
        assert!(parse_file_name("etcd+.yaml").is_err());
    }

    #[test]
    fn merge_and_json_patches() {
        let mut doc = json!({"a": {"b": 1, "c": 2}, "l": [1, 2]});
        apply_one(
            &mut doc,
            &json!({"a": {"b": null, "d": 3}, "l": [9]}),
            PatchType::Merge,
            Schema::Generic,
        )
        .unwrap();
        assert_eq!(doc, json!({"a": {"c": 2, "d": 3}, "l": [9]}));
        apply_one(
            &mut doc,
            &json!([{"op": "add", "path": "/l/-", "value": 10}, {"op": "remove", "path": "/a/c"}]),
            PatchType::Json,
            Schema::Generic,
        )
        .unwrap();
        assert_eq!(doc, json!({"a": {"d": 3}, "l": [9, 10]}));
        let err = apply_one(
            &mut doc,
            &json!({"op": "add"}),
            PatchType::Json,
            Schema::Generic,
        )
        .unwrap_err();
        assert!(err.to_string().contains("RFC 6902"), "{err}");
    }

    #[test]
    fn a_directory_is_read_in_file_name_order_and_bad_names_are_invalid_input() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("etcd1+merge.yaml"), "a: 2\n---\nb: 3\n").unwrap();
        std::fs::write(dir.path().join("etcd0.json"), "{\"a\": 1}").unwrap();
        std::fs::write(dir.path().join("README.md"), "x").unwrap();
        std::fs::write(dir.path().join("etcd2.yaml"), "").unwrap();
        let set = PatchSet::read(dir.path(), &Ui::default()).unwrap();
        let names: Vec<&str> = set.files.iter().map(|f| f.file_name.as_str()).collect();
        assert_eq!(names, vec!["etcd0.json", "etcd1+merge.yaml"]);
        assert_eq!(set.files[1].patches, vec![json!({"a": 2}), json!({"b": 3})]);
        assert!(check_dir(dir.path()).is_ok());
        std::fs::write(dir.path().join("etcd+bogus.yaml"), "a: 1").unwrap();
        let err = check_dir(dir.path()).unwrap_err();
        assert_eq!(err.errors[0].field, "--patches");
        let err = PatchSet::read(dir.path(), &Ui::default()).unwrap_err();
        assert!(err.downcast_ref::<InvalidInput>().is_some(), "{err}");
    }
}

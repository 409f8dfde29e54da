//! The `kubeadm-certs` Secret at the format level, against `tests/scripts/kubeadm_certs.py`, an
//! independent implementation of kubeadm's copycerts encryption (the `cryptography` package's
//! AES-GCM): what it seals, kubestrap's control-plane join decrypts to the right paths; what
//! kubestrap's upload-certs seals, it opens; and a wrong key is refused on both sides.

use std::collections::BTreeMap;
use std::process::Command;

use base64::Engine;
use kubestrap::certs::upload;
use kubestrap::config::flags::InitFlags;
use kubestrap::host::{Facts, Host, Root};
use kubestrap::model::Model;
use kubestrap::model::resolve::init::resolve_file;
use kubestrap::output::Ui;

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/scripts/kubeadm_certs.py"
);

fn model() -> Model {
    let text = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\n\
                nodeRegistration: {name: cp1}\nlocalAPIEndpoint: {advertiseAddress: 192.168.8.201}\n";
    let file = kubestrap::config::load::parse(text).unwrap();
    resolve_file(file, &InitFlags::default(), &Facts::default(), &[])
        .unwrap()
        .model
}

fn python(args: &[&str]) -> std::process::Output {
    let out = Command::new("python3")
        .arg(SCRIPT)
        .args(args)
        .output()
        .expect("python3 runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("No module named 'cryptography'"),
        "the Python package cryptography is needed (.ci/pip-packages): {stderr}"
    );
    out
}

/// A file's stand-in contents: its name, so a file decrypted to the wrong path shows.
fn contents(name: &str) -> Vec<u8> {
    format!("-----BEGIN TEST-----\n{name}\n-----END TEST-----\n").into_bytes()
}

#[test]
fn a_secret_sealed_in_python_opens_in_kubestrap_at_kubeadms_paths() {
    let model = model();
    let cp = model.control_plane().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let key = upload::generate_key().unwrap();
    let mut pairs = Vec::new();
    for (name, _) in upload::files(&cp) {
        let path = dir.path().join(&name);
        std::fs::write(&path, contents(&name)).unwrap();
        pairs.push(format!("{name}={}", path.display()));
    }
    let mut args = vec!["seal", key.as_str()];
    args.extend(pairs.iter().map(String::as_str));
    let out = python(&args);
    assert!(out.status.success(), "{out:?}");
    let secret: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(secret["metadata"]["name"], upload::SECRET_NAME);
    let data: BTreeMap<String, Vec<u8>> = secret["data"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(v.as_str().unwrap())
                .unwrap();
            (k.clone(), bytes)
        })
        .collect();
    let files = upload::decrypted_files(&cp, &key, &data).unwrap();
    assert_eq!(files.len(), 8);
    for (path, plain) in &files {
        let name = path
            .display_str()
            .trim_start_matches("/etc/kubernetes/pki/")
            .replace('/', "-");
        assert_eq!(plain, &contents(&name), "{path}");
    }
    assert!(
        files
            .iter()
            .any(|(p, _)| p.display_str() == "/etc/kubernetes/pki/etcd/ca.key")
    );
    let other = upload::generate_key().unwrap();
    let err = upload::decrypted_files(&cp, &other, &data)
        .unwrap_err()
        .to_string();
    assert!(err.contains("does not decrypt"), "{err}");
}

#[test]
fn kubestraps_uploaded_secret_opens_in_python() {
    let model = model();
    let cp = model.control_plane().unwrap();
    let root = tempfile::tempdir().unwrap();
    let host = Host::new(
        Root::new(root.path()),
        Facts::default(),
        false,
        Ui::default(),
    );
    for (name, path) in upload::files(&cp) {
        let disk = host.disk(&path);
        std::fs::create_dir_all(disk.parent().unwrap()).unwrap();
        std::fs::write(disk, contents(&name)).unwrap();
    }
    let key = upload::generate_key().unwrap();
    let sealed = upload::encrypted_files(&host, &cp, &key).unwrap();
    let secret = serde_json::json!({
        "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": upload::SECRET_NAME, "namespace": upload::NAMESPACE},
        "data": sealed.iter().map(|(name, bytes)| {
            (name.clone(), serde_json::Value::String(base64::engine::general_purpose::STANDARD.encode(bytes)))
        }).collect::<serde_json::Map<_, _>>(),
    });
    let work = tempfile::tempdir().unwrap();
    let secret_path = work.path().join("secret.json");
    std::fs::write(&secret_path, secret.to_string()).unwrap();
    let out_dir = work.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let opened = python(&[
        "open",
        &key,
        secret_path.to_str().unwrap(),
        out_dir.to_str().unwrap(),
    ]);
    assert!(opened.status.success(), "{opened:?}");
    for (name, _) in upload::files(&cp) {
        assert_eq!(
            std::fs::read(out_dir.join(&name)).unwrap(),
            contents(&name),
            "{name}"
        );
    }
    let wrong = upload::generate_key().unwrap();
    let refused = python(&[
        "open",
        &wrong,
        secret_path.to_str().unwrap(),
        out_dir.to_str().unwrap(),
    ]);
    assert_eq!(refused.status.code(), Some(1), "{refused:?}");
}

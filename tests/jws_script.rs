//! `tests/scripts/verify-jws.sh`, the independent verifier the testbed runs against kubestrap's
//! cluster-info signatures, checked against kubeadm's golden vector (and a wrong secret refused), so a
//! broken verifier cannot pass kubestrap's signatures; and `tests/scripts/cluster_info_jws.py`, an
//! independent Python implementation of kubeadm's signing: what it signs, a joining kubestrap
//! accepts (discovery::verify), what kubestrap signs, it verifies, and both agree on kubeadm's vector.

use std::process::Command;

use base64::Engine;

const GOLDEN_JWS: &str =
    "eyJhbGciOiJIUzI1NiIsImtpZCI6ImFiY2RlZiJ9..wUZ0q9o0VK1RWFptmSBOEem2bXHWrHyxrposHg0mb1w";

fn verify(secret: &str, payload: &std::path::Path, jws: &str) -> std::process::Output {
    Command::new("sh")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/scripts/verify-jws.sh"
        ))
        .args(["abcdef", secret])
        .arg(payload)
        .arg(jws)
        .output()
        .unwrap()
}

#[test]
fn the_verifier_accepts_kubeadms_vector_and_nothing_else() {
    let ca = include_bytes!("golden/kubeadm-fixture-ca.crt");
    let kubeconfig = format!(
        "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: {}\n    server: https://192.168.0.101:6443\n  name: \"\"\ncontexts: null\ncurrent-context: \"\"\nkind: Config\npreferences: {{}}\nusers: null\n",
        base64::engine::general_purpose::STANDARD.encode(ca)
    );
    let dir = tempfile::tempdir().unwrap();
    let payload = dir.path().join("kubeconfig");
    std::fs::write(&payload, &kubeconfig).unwrap();
    let good = verify("abcdef0123456789", &payload, GOLDEN_JWS);
    assert!(good.status.success(), "{good:?}");
    let wrong_secret = verify("abcdef0123456780", &payload, GOLDEN_JWS);
    assert_eq!(wrong_secret.status.code(), Some(1));
    std::fs::write(&payload, kubeconfig.replace("101", "102")).unwrap();
    let wrong_payload = verify("abcdef0123456789", &payload, GOLDEN_JWS);
    assert_eq!(wrong_payload.status.code(), Some(1));
}

fn python(args: &[&str]) -> std::process::Output {
    Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/scripts/cluster_info_jws.py"
        ))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn an_independent_python_signer_and_kubestrap_agree_both_ways() {
    use kubestrap::discovery::verify::{CaTrust, DiscoveryError, verify};
    let ca = include_bytes!("golden/kubeadm-fixture-ca.crt");
    let pin = "sha256:3b793efefe27a19f93b0fbe6e637e9c41d0dde8a377d6ab1c0f656bf1136dd8a";
    let kubeconfig =
        kubestrap::kubeconfig::cluster_info::kubeconfig("https://192.168.0.101:6443", ca).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let payload = dir.path().join("kubeconfig");
    std::fs::write(&payload, &kubeconfig).unwrap();
    let path = payload.to_str().unwrap();

    // kubeadm's vector, from Python.
    let signed = python(&["sign", "abcdef", "abcdef0123456789", path]);
    assert!(signed.status.success(), "{signed:?}");
    let jws = String::from_utf8(signed.stdout).unwrap().trim().to_string();
    assert_eq!(jws, GOLDEN_JWS);

    // Python's signature over another token is accepted by a joining kubestrap…
    let token = kubestrap::token::Token::parse("k8s4ab.python0signs0it0").unwrap();
    let signed = python(&["sign", &token.id, &token.secret, path]);
    let jws = String::from_utf8(signed.stdout).unwrap().trim().to_string();
    let trust = CaTrust::Pinned(vec![pin.to_string()]);
    let info = verify(&kubeconfig, Some(&jws), &token, &trust, "python").unwrap();
    assert_eq!(info.servers, ["https://192.168.0.101:6443"]);
    // …and refused over a tampered cluster-info or with another secret.
    let tampered = kubeconfig.replace("192.168.0.101", "192.168.0.102");
    let err = verify(&tampered, Some(&jws), &token, &trust, "python").unwrap_err();
    assert!(matches!(err, DiscoveryError::BadSignature { .. }), "{err}");
    let other = kubestrap::token::Token::parse("k8s4ab.another0secret00").unwrap();
    assert!(verify(&kubeconfig, Some(&jws), &other, &trust, "python").is_err());

    // kubestrap's signature verifies in Python; a wrong secret does not.
    let ours = token.sign(&kubeconfig);
    let ok = python(&["verify", &token.id, &token.secret, path, &ours]);
    assert!(ok.status.success(), "{ok:?}");
    let bad = python(&["verify", &token.id, "another0secret00", path, &ours]);
    assert_eq!(bad.status.code(), Some(1));
}

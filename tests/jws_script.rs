//! `tests/scripts/verify-jws.sh`, the independent verifier the testbed runs against kubestrap's
//! cluster-info signatures, checked against kubeadm's golden vector (and a wrong secret refused), so a
//! broken verifier cannot pass kubestrap's signatures.

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

//! The joining node's discovery client (`discovery::fetch::token_discovery`) against kubestrap's own
//! discovery server on loopback: a signed, pinned cluster-info is accepted; an endpoint whose serving
//! certificate does not chain to the CA cluster-info names (a man in the middle who knows the token)
//! is refused at the verified re-read; cluster-info tampered in transit fails the signature; an
//! unknown token id is retried within the discovery timeout and named with its remedy; a closed port
//! is named with its address.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use kubestrap::discovery::Published;
use kubestrap::discovery::fetch::{Endpoint, token_discovery};
use kubestrap::discovery::server::{Server, ServerOptions};
use kubestrap::discovery::verify::CaTrust;
use kubestrap::output::Ui;
use kubestrap::pki::cert::{self, AltNames, Authority, LeafTemplate, Subject, Usage, Validity};
use kubestrap::token::Token;

struct Ca {
    pem: Vec<u8>,
    authority: Authority,
    pin: String,
}

fn ca(name: &str) -> Ca {
    let key = kubestrap::pki::keys::generate(Default::default()).unwrap();
    let validity = Validity::from_now(Duration::from_secs(3600)).unwrap();
    let issued = cert::self_signed_ca(name, validity, &key).unwrap();
    let pin = kubestrap::pki::pin::pin_of_der(&issued.der).unwrap();
    Ca {
        pem: issued.pem.clone().into_bytes(),
        authority: Authority::new(&issued.der, key).unwrap(),
        pin,
    }
}

/// A serving certificate for 127.0.0.1 from `ca`: (cert PEM, key PEM).
fn serving(ca: &Ca) -> (Vec<u8>, Vec<u8>) {
    let key = kubestrap::pki::keys::generate(Default::default()).unwrap();
    let mut names = AltNames::default();
    names.add_ip(IpAddr::from([127, 0, 0, 1]));
    let template = LeafTemplate {
        subject: Subject::new("kubestrap-discovery", &[]),
        usages: vec![Usage::ServerAuth],
        alt_names: names,
    };
    let validity = Validity::from_now(Duration::from_secs(3600)).unwrap();
    let issued = ca.authority.sign(&template, validity, &key).unwrap();
    (
        issued.pem.into_bytes(),
        kubestrap::pki::keys::private_key_pem(&key).into_bytes(),
    )
}

/// Serves `published` over `serving` on a free loopback port; returns its URL. The server lives as
/// long as the test process.
fn serve(published: Published, serving: &(Vec<u8>, Vec<u8>)) -> String {
    let options = ServerOptions {
        address: IpAddr::from([127, 0, 0, 1]),
        port: 0,
        ..Default::default()
    };
    let server = Server::bind(&options, &serving.0, &serving.1, Ui::default()).unwrap();
    let addr = server.local_addr().unwrap();
    server.publisher().set(Some(published));
    std::thread::spawn(move || server.run(std::future::pending::<()>()));
    format!("https://{addr}")
}

fn quiet() -> Ui {
    Ui::new(0, true, kubestrap::output::Format::Text)
}

#[test]
fn the_client_verifies_signature_pin_and_the_endpoints_chain() {
    let cluster_ca = ca("kubernetes");
    let other_ca = ca("mallory");
    let token = Token::parse("abcdef.0123456789abcdef").unwrap();
    let kubeconfig =
        kubestrap::kubeconfig::cluster_info::kubeconfig("https://127.0.0.1:6443", &cluster_ca.pem)
            .unwrap();
    let signed = || Published::new(&kubeconfig, [(token.id.clone(), token.sign(&kubeconfig))]);
    let pinned = CaTrust::Pinned(vec![cluster_ca.pin.clone()]);
    let timeout = Duration::from_secs(2);

    // The genuine endpoint: served with a certificate of the cluster CA.
    let genuine = Endpoint::Signed(serve(signed(), &serving(&cluster_ca)));
    let info = token_discovery(&genuine, &token, &pinned, timeout, &quiet()).unwrap();
    assert_eq!(info.servers, ["https://127.0.0.1:6443"]);
    assert_eq!(info.ca_pem, cluster_ca.pem);

    // A wrong pin.
    let wrong = CaTrust::Pinned(vec![other_ca.pin.clone()]);
    let err = format!(
        "{:#}",
        token_discovery(&genuine, &token, &wrong, timeout, &quiet()).unwrap_err()
    );
    assert!(
        err.contains("matches none") && err.contains(&other_ca.pin),
        "{err}"
    );

    // Someone who knows the token serves the signed cluster-info with a certificate of another CA.
    let impostor = Endpoint::Signed(serve(signed(), &serving(&other_ca)));
    let err = format!(
        "{:#}",
        token_discovery(&impostor, &token, &pinned, timeout, &quiet()).unwrap_err()
    );
    assert!(err.contains("does not chain"), "{err}");

    // Tampered in transit: another server in cluster-info, the original signature.
    let tampered = kubeconfig.replace("127.0.0.1:6443", "127.0.0.66:6443");
    let forged = Endpoint::Signed(serve(
        Published::new(&tampered, [(token.id.clone(), token.sign(&kubeconfig))]),
        &serving(&cluster_ca),
    ));
    let err = format!(
        "{:#}",
        token_discovery(&forged, &token, &pinned, timeout, &quiet()).unwrap_err()
    );
    assert!(
        err.contains("does not verify") && err.contains("token secret is wrong"),
        "{err}"
    );

    // A token the endpoint holds no signature for: retried until the timeout, then named.
    let unknown = Token::parse("zzzzzz.0123456789abcdef").unwrap();
    let started = Instant::now();
    let err = format!(
        "{:#}",
        token_discovery(
            &genuine,
            &unknown,
            &pinned,
            Duration::from_secs(1),
            &quiet()
        )
        .unwrap_err()
    );
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert!(
        err.contains("no signature")
            && err.contains("\"zzzzzz\"")
            && err.contains("kubestrap token create --print-join-command")
            && err.contains("gave up after"),
        "{err}"
    );

    // Nothing listening: the address tried is named.
    let closed = Endpoint::ApiServer("127.0.0.1:1".into());
    let err = format!(
        "{:#}",
        token_discovery(
            &closed,
            &token,
            &pinned,
            Duration::from_millis(600),
            &quiet()
        )
        .unwrap_err()
    );
    assert!(err.contains("could not reach https://127.0.0.1:1"), "{err}");
}

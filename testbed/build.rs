//! Generates the server side of the CRI (k8s.io/cri-api runtime.v1) from the product's vendored proto,
//! without protoc. The messages are not generated again: they are the product's own
//! (`kubestrap::host::runtime::cri::api`), so the runtime double and kubestrap's client share one set.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "../proto/cri/api.proto";
    println!("cargo:rerun-if-changed={proto}");
    let descriptors = protox::compile([proto], ["../proto/cri"])?;
    tonic_prost_build::configure()
        .build_client(false)
        .build_server(true)
        .generate_default_stubs(true)
        .extern_path(".runtime.v1", "::kubestrap::host::runtime::cri::api")
        .compile_fds(descriptors)?;
    Ok(())
}

//! Generates the CRI (k8s.io/cri-api runtime.v1) gRPC client from the vendored proto, without protoc,
//! and the list of pod-network addon folders (`addons/<name>/addon.yaml` and its templates) embedded in
//! the binary, so that adding an addon is adding a folder.

use std::fmt::Write as _;
use std::path::Path;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "proto/cri/api.proto";
    println!("cargo:rerun-if-changed={proto}");
    let descriptors = protox::compile([proto], ["proto/cri"])?;
    tonic_prost_build::configure()
        .build_server(false)
        .compile_fds(descriptors)?;
    addon_folders()?;
    Ok(())
}

/// `$OUT_DIR/pod_network_addons.rs`: `&[(name, addon.yaml text, &[(template file, text)])]`, one entry
/// per folder under `addons/` that holds an `addon.yaml`, in name order.
fn addon_folders() -> Result<(), Box<dyn std::error::Error>> {
    let root = Path::new(&std::env::var("CARGO_MANIFEST_DIR")?).join("addons");
    println!("cargo:rerun-if-changed={}", root.display());
    let mut folders: Vec<_> = std::fs::read_dir(&root)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.join("addon.yaml").is_file())
        .collect();
    folders.sort();
    let mut out = String::from("&[\n");
    for folder in &folders {
        println!("cargo:rerun-if-changed={}", folder.display());
        let name = folder
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or("an addon folder name is not UTF-8")?;
        let mut templates: Vec<_> = std::fs::read_dir(folder)?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "yaml") && !p.ends_with("addon.yaml"))
            .collect();
        templates.sort();
        let data = folder.join("addon.yaml");
        println!("cargo:rerun-if-changed={}", data.display());
        write!(
            out,
            "    ({name:?}, include_str!({:?}), &[",
            data.display().to_string()
        )?;
        for t in &templates {
            println!("cargo:rerun-if-changed={}", t.display());
            let file = t
                .file_name()
                .and_then(|n| n.to_str())
                .ok_or("a template name is not UTF-8")?;
            write!(
                out,
                "({file:?}, include_str!({:?})), ",
                t.display().to_string()
            )?;
        }
        out.push_str("]),\n");
    }
    out.push(']');
    let dest = Path::new(&std::env::var("OUT_DIR")?).join("pod_network_addons.rs");
    std::fs::write(dest, out)?;
    Ok(())
}

//! `kubestrap config`: print kubeadm-style defaults, validate a configuration file, list images.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};
use serde::Serialize;

use super::GlobalOpts;
use crate::config::flags::InitFlags;
use crate::config::{defaults, init, load, types::*, validate as v};
use crate::error::{FieldError, InvalidInput};
use crate::host::Facts;

#[derive(Debug, Subcommand)]
pub enum ConfigCmd {
    /// Print default configuration documents
    #[command(subcommand)]
    Print(PrintCmd),
    /// Check a configuration file: strict decoding, defaults and validation
    Validate {
        /// The file to check
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// The container images of the control plane and the essential addons
    #[command(subcommand)]
    Images(ImagesCmd),
}

#[derive(Debug, Subcommand)]
pub enum PrintCmd {
    /// InitConfiguration and ClusterConfiguration with every default filled in
    InitDefaults,
    /// JoinConfiguration defaults
    JoinDefaults,
    /// ResetConfiguration defaults
    ResetDefaults,
}

#[derive(Debug, Subcommand)]
pub enum ImagesCmd {
    /// List the images init would use
    List(ImagesArgs),
    /// Pull the images init would use through the node's container runtime (CRI)
    Pull(ImagesPullArgs),
}

#[derive(Debug, Args)]
pub struct ImagesPullArgs {
    #[command(flatten)]
    pub images: ImagesArgs,
    /// CRI socket to pull through (default: nodeRegistration.criSocket)
    #[arg(long, value_name = "SOCKET")]
    pub cri_socket: Option<String>,
}

#[derive(Debug, Args)]
pub struct ImagesArgs {
    /// Configuration file (InitConfiguration/ClusterConfiguration)
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Kubernetes version
    #[arg(long, value_name = "VERSION")]
    pub kubernetes_version: Option<String>,
    /// Image registry
    #[arg(long, value_name = "REPO")]
    pub image_repository: Option<String>,
}

pub fn run(global: &GlobalOpts, cmd: ConfigCmd) -> anyhow::Result<()> {
    match cmd {
        ConfigCmd::Print(which) => print_defaults(which),
        ConfigCmd::Validate { config } => validate_file(global, &config),
        ConfigCmd::Images(ImagesCmd::List(args)) => images_list(global, &args),
        ConfigCmd::Images(ImagesCmd::Pull(args)) => images_pull(global, &args),
    }
}

fn print_defaults(which: PrintCmd) -> anyhow::Result<()> {
    let text = match which {
        PrintCmd::InitDefaults => {
            let (init, cluster) = defaults::printable_init_defaults();
            crate::yaml::to_documents(&[
                serde_json::to_value(init)?,
                serde_json::to_value(cluster)?,
            ])?
        }
        PrintCmd::JoinDefaults => crate::yaml::to_string(&defaults::printable_join_defaults())?,
        PrintCmd::ResetDefaults => {
            let mut reset = ResetConfiguration::default();
            defaults::reset_configuration(&mut reset);
            crate::yaml::to_string(&reset)?
        }
    };
    print!("{text}");
    Ok(())
}

fn validate_file(global: &GlobalOpts, path: &std::path::Path) -> anyhow::Result<()> {
    let file = load::read_file(path)?;
    let ui = global.ui();
    for warning in &file.warnings {
        ui.warn(warning);
    }
    let mut checked = Vec::new();
    if file.init.is_some() || file.cluster.is_some() {
        let settings = init::resolve_file(file.clone(), &InitFlags::default(), &Facts::from_env())?;
        for notice in &settings.notices {
            ui.warn(notice);
        }
        checked.push("InitConfiguration/ClusterConfiguration");
    }
    if let Some(join) = &file.join {
        InvalidInput::check(validate_join(join))?;
        checked.push("JoinConfiguration");
    }
    if let Some(reset) = &file.reset {
        InvalidInput::check(validate_reset(reset))?;
        checked.push("ResetConfiguration");
    }
    if checked.is_empty() {
        return Err(InvalidInput::one(
            "--config",
            path.display(),
            "the file holds no InitConfiguration, ClusterConfiguration, JoinConfiguration or ResetConfiguration",
        )
        .into());
    }
    println!("ok: {} ({})", path.display(), checked.join(", "));
    Ok(())
}

/// Checks of a JoinConfiguration that need no cluster.
pub fn validate_join(join: &JoinConfiguration) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let d = &join.discovery;
    match (&d.bootstrap_token, &d.file) {
        (Some(_), Some(_)) => errors.push(FieldError::new(
            "discovery",
            "bootstrapToken and file",
            "exactly one of discovery.bootstrapToken and discovery.file may be set",
        )),
        (None, None) => errors.push(FieldError::new(
            "discovery",
            "",
            "one of discovery.bootstrapToken and discovery.file must be set",
        )),
        _ => {}
    }
    if let Some(bt) = &d.bootstrap_token {
        if let Some(token) = &bt.token {
            v::token("discovery.bootstrapToken.token", token, &mut errors);
        }
        match &bt.api_server_endpoint {
            Some(ep) => {
                v::host_port(
                    "discovery.bootstrapToken.apiServerEndpoint",
                    ep,
                    &mut errors,
                );
            }
            None => errors.push(FieldError::new(
                "discovery.bootstrapToken.apiServerEndpoint",
                "",
                "the API server endpoint (host:port) is required for token discovery",
            )),
        }
        let hashes = bt.ca_cert_hashes.clone().unwrap_or_default();
        for (i, h) in hashes.iter().enumerate() {
            let ok = h
                .strip_prefix("sha256:")
                .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()));
            if !ok {
                errors.push(FieldError::new(
                    format!("discovery.bootstrapToken.caCertHashes[{i}]"),
                    h,
                    "a CA pin has the form sha256:<64 hex characters>",
                ));
            }
        }
        if hashes.is_empty() && bt.unsafe_skip_ca_verification != Some(true) {
            errors.push(FieldError::new(
                "discovery.bootstrapToken.caCertHashes",
                "[]",
                "using token-based discovery without caCertHashes can be unsafe; set unsafeSkipCAVerification to continue",
            ));
        }
    }
    if let Some(t) = &d.tls_bootstrap_token {
        v::token("discovery.tlsBootstrapToken", t, &mut errors);
    }
    if let Some(name) = &join.node_registration.name {
        v::node_name("nodeRegistration.name", name, &mut errors);
    }
    if let Some(cp) = &join.control_plane {
        if let Some(addr) = &cp.local_api_endpoint.advertise_address {
            v::advertise_address(
                "controlPlane.localAPIEndpoint.advertiseAddress",
                addr,
                &mut errors,
            );
        }
        if let Some(port) = cp.local_api_endpoint.bind_port {
            v::port("controlPlane.localAPIEndpoint.bindPort", port, &mut errors);
        }
        if let Some(key) = &cp.certificate_key {
            v::certificate_key("controlPlane.certificateKey", key, &mut errors);
        }
    }
    if let Some(path) = &join.ca_cert_path {
        v::absolute_path("caCertPath", path, &mut errors);
    }
    errors
}

/// Checks of a ResetConfiguration.
pub fn validate_reset(reset: &ResetConfiguration) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if let Some(dir) = &reset.certificates_dir {
        v::absolute_path("certificatesDir", dir, &mut errors);
    }
    if let Some(socket) = &reset.cri_socket {
        v::cri_socket("criSocket", socket, &mut errors);
    }
    for flag in reset.unmount_flags.iter().flatten() {
        v::one_of(
            "unmountFlags",
            flag,
            &["MNT_FORCE", "MNT_DETACH", "MNT_EXPIRE", "UMOUNT_NOFOLLOW"],
            &mut errors,
        );
    }
    if let Some(list) = &reset.ignore_preflight_errors {
        v::ignore_preflight_errors("ignorePreflightErrors", list, &mut errors);
    }
    errors
}

/// kubeadm's `output.kubeadm.k8s.io/v1alpha3` Images document.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ImageList {
    kind: &'static str,
    api_version: &'static str,
    images: Vec<String>,
}

/// The configuration the image commands work from: the file or the flags, plus defaults.
fn image_settings(args: &ImagesArgs) -> anyhow::Result<init::InitSettings> {
    let mut file = match &args.config {
        Some(path) => {
            if args.kubernetes_version.is_some() || args.image_repository.is_some() {
                return Err(InvalidInput::one(
                    "--config",
                    path.display(),
                    "can not mix '--config' with --kubernetes-version or --image-repository",
                )
                .into());
            }
            load::read_file(path)?
        }
        None => load::ConfigFile::default(),
    };
    // The image list does not depend on the node: placeholders keep host facts out of it.
    let node = file.init.get_or_insert_with(Default::default);
    node.node_registration
        .name
        .get_or_insert_with(|| "node".to_string());
    node.local_api_endpoint
        .advertise_address
        .get_or_insert_with(|| "192.0.2.1".to_string());
    let flags = InitFlags {
        kubernetes_version: args.kubernetes_version.clone(),
        image_repository: args.image_repository.clone(),
        ..Default::default()
    };
    Ok(init::resolve_file(file, &flags, &Facts::from_env())?)
}

fn images_list(global: &GlobalOpts, args: &ImagesArgs) -> anyhow::Result<()> {
    let settings = image_settings(args)?;
    let list = ImageList {
        kind: "Images",
        api_version: "output.kubeadm.k8s.io/v1alpha3",
        images: crate::images::required_images(&settings),
    };
    global.ui().result(&list, || {
        list.images.iter().map(|i| format!("{i}\n")).collect()
    })
}

/// How long one image may take to pull before the pull is called hung.
const PULL_TIMEOUT: Duration = Duration::from_secs(300);

fn images_pull(global: &GlobalOpts, args: &ImagesPullArgs) -> anyhow::Result<()> {
    let settings = image_settings(&args.images)?;
    let socket = match &args.cri_socket {
        Some(flag) => {
            let mut errors = Vec::new();
            let socket = v::cri_socket("--cri-socket", flag, &mut errors);
            InvalidInput::check(errors)?;
            socket.unwrap_or_default()
        }
        None => settings
            .init
            .node_registration
            .cri_socket
            .clone()
            .unwrap_or_default(),
    };
    let ui = global.ui();
    for image in crate::images::required_images(&settings) {
        if global.dry_run {
            ui.line(format!("[dry-run] Would pull {image} through {socket}"));
            continue;
        }
        crate::host::runtime::cri::pull_image(&socket, &image, PULL_TIMEOUT).map_err(|e| {
            anyhow::anyhow!(
                "failed to pull image {image}: {}; check the registry is reachable from this node, or set --image-repository",
                crate::error::describe(&e)
            )
        })?;
        ui.line(format!("[config/images] Pulled {image}"));
    }
    Ok(())
}

//! `kubestrap config`: print kubeadm-style defaults, validate a configuration file, list and pull images,
//! and view the model this node recorded.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};
use serde::Serialize;

use super::GlobalOpts;
use crate::config::flags::{InitFlags, PodNetwork};
use crate::config::{defaults, load, types::*, validate as v};
use crate::error::InvalidInput;
use crate::host::Facts;
use crate::model::record;
use crate::model::resolve::init::{self, ResolvedInit};
use crate::output::Format;

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
    /// Print the resolved cluster model this node recorded at init (/var/lib/kubestrap/cluster.yaml)
    View,
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
    /// Pod-network addon whose images are listed with the control plane's (none: no addon images)
    #[arg(
        long,
        value_parser = PodNetwork::parser(),
        value_name = "ADDON",
        default_value = crate::podnet::DEFAULT
    )]
    pub pod_network: PodNetwork,
}

pub fn run(global: &GlobalOpts, cmd: ConfigCmd) -> anyhow::Result<()> {
    match cmd {
        ConfigCmd::Print(which) => print_defaults(global, which),
        ConfigCmd::Validate { config } => validate_file(global, &config),
        ConfigCmd::Images(ImagesCmd::List(args)) => images_list(global, &args),
        ConfigCmd::Images(ImagesCmd::Pull(args)) => images_pull(global, &args),
        ConfigCmd::View => view(global),
    }
}

/// init's phase paths, for a configuration's `skipPhases`.
fn init_phases() -> Vec<String> {
    crate::workflow::phase_paths(&crate::phases::init::workflow().tree())
}

/// `config view`: the node record as YAML (also for `-o text`), or as JSON.
fn view(global: &GlobalOpts) -> anyhow::Result<()> {
    let host = global.host();
    let Some(record) = record::read(&host)? else {
        anyhow::bail!(
            "this node has no record of a cluster model ({} does not exist): it was not set up by 'kubestrap init', or it was reset",
            host.disk(&record::path()).display()
        );
    };
    let text = match global.output {
        Format::Json => serde_json::to_string_pretty(&record)? + "\n",
        _ => record.to_yaml()?,
    };
    crate::output::print(text)
}

/// `config print`: the documents as YAML (text and `-o yaml`, usable as `--config`), or with `-o json`
/// each document as one JSON object, in order (a JSON stream, as `jq` reads it).
fn print_defaults(global: &GlobalOpts, which: PrintCmd) -> anyhow::Result<()> {
    let documents = match which {
        PrintCmd::InitDefaults => {
            let (init, cluster) = defaults::printable_init_defaults();
            vec![serde_json::to_value(init)?, serde_json::to_value(cluster)?]
        }
        PrintCmd::JoinDefaults => vec![serde_json::to_value(defaults::printable_join_defaults())?],
        PrintCmd::ResetDefaults => {
            let mut reset = ResetConfiguration::default();
            defaults::reset_configuration(&mut reset);
            vec![serde_json::to_value(reset)?]
        }
    };
    let text = match global.output {
        Format::Json => {
            let mut text = String::new();
            for document in &documents {
                text.push_str(&serde_json::to_string_pretty(document)?);
                text.push('\n');
            }
            text
        }
        _ => crate::yaml::to_documents(&documents)?,
    };
    crate::output::print(text)
}

/// `config validate -o json|yaml`: what was checked.
#[derive(Debug, Serialize)]
struct Validation {
    file: String,
    checked: Vec<&'static str>,
    warnings: Vec<String>,
}

fn validate_file(global: &GlobalOpts, path: &std::path::Path) -> anyhow::Result<()> {
    let file = load::read_file(path)?;
    let ui = global.ui();
    let mut warnings = file.warnings.clone();
    let mut checked = Vec::new();
    if file.init.is_some() || file.cluster.is_some() {
        let resolved = init::resolve_file(
            file.clone(),
            &InitFlags::default(),
            &Facts::from_env(),
            &init_phases(),
        )?;
        for notice in resolved.notices {
            if !warnings.contains(&notice) {
                warnings.push(notice);
            }
        }
        checked.push("InitConfiguration/ClusterConfiguration");
    }
    if let Some(join) = &file.join {
        InvalidInput::check(v::join_configuration(join))?;
        checked.push("JoinConfiguration");
    }
    if let Some(reset) = &file.reset {
        InvalidInput::check(v::reset_configuration(reset))?;
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
    for warning in &warnings {
        ui.warn(warning);
    }
    let validation = Validation {
        file: path.display().to_string(),
        checked,
        warnings,
    };
    ui.result(&validation, || {
        format!(
            "ok: {} ({})\n",
            validation.file,
            validation.checked.join(", ")
        )
    })
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
fn image_settings(args: &ImagesArgs) -> anyhow::Result<ResolvedInit> {
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
    init::placeholder_node(&mut file);
    let flags = InitFlags {
        kubernetes_version: args.kubernetes_version.clone(),
        image_repository: args.image_repository.clone(),
        pod_network: Some(args.pod_network),
        ..Default::default()
    };
    Ok(init::resolve_file(
        file,
        &flags,
        &Facts::from_env(),
        &init_phases(),
    )?)
}

fn images_list(global: &GlobalOpts, args: &ImagesArgs) -> anyhow::Result<()> {
    let settings = image_settings(args)?;
    let list = ImageList {
        kind: "Images",
        api_version: "output.kubeadm.k8s.io/v1alpha3",
        images: images(&settings),
    };
    global.ui().result(&list, || {
        list.images.iter().map(|i| format!("{i}\n")).collect()
    })
}

/// The control plane's images (kubeadm's list), then the pod-network addon's.
fn images(settings: &ResolvedInit) -> Vec<String> {
    let cluster = &settings.model.cluster;
    let mut images = cluster.required_images();
    images.extend(crate::addons::pod_network::images(cluster));
    images
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
        None => settings.model.node.cri_socket.clone(),
    };
    let ui = global.ui();
    for image in images(&settings) {
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

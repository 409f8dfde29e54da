//! `kubestrap token`: bootstrap tokens — `generate` offline; `create`, `list` and `delete` on the
//! cluster through admin.conf, each token's cluster-info signature published and removed with it.

use anyhow::Context as _;
use clap::{Args, Subcommand};

use super::GlobalOpts;
use crate::cluster::{Client, Gateway, Retry};
use crate::config::defaults::DEFAULT_TOKEN_GROUP;
use crate::config::duration::GoDuration;
use crate::config::validate::{self as v, TOKEN_USAGES};
use crate::discovery::tokens::{self, BootstrapToken};
use crate::error::{FieldError, InvalidInput};
use crate::host::{Host, NodePath};
use crate::phases::init::show_join_command::JoinCommand;
use crate::token::{Token, TokenGrant};

/// How long one API call of a token command may keep retrying.
const API_DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);

#[derive(Debug, Subcommand)]
pub enum TokenCmd {
    /// Create a bootstrap token on the cluster (and publish its cluster-info signature)
    Create(CreateArgs),
    /// List the cluster's bootstrap tokens (-o json|yaml: kubeadm's BootstrapToken objects)
    List(ClusterArgs),
    /// Delete bootstrap tokens (by id or whole token) and their cluster-info signatures
    Delete(DeleteArgs),
    /// Print a new random bootstrap token ([a-z0-9]{6}.[a-z0-9]{16})
    Generate,
}

/// How the token commands reach the cluster.
#[derive(Debug, Args)]
pub struct ClusterArgs {
    /// The kubeconfig to talk to the cluster with
    #[arg(
        long,
        value_name = "FILE",
        default_value = "/etc/kubernetes/admin.conf"
    )]
    pub kubeconfig: String,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The token to create (default: a new random one)
    #[arg(value_name = "TOKEN")]
    pub token: Option<String>,
    /// How long the token is valid (Go duration; 0 never expires)
    #[arg(long, value_name = "DURATION", default_value = "24h0m0s")]
    pub ttl: String,
    /// What the token may be used for: signing (cluster-info) and/or authentication
    #[arg(long, value_name = "USAGE", value_delimiter = ',', default_values_t = [String::from("signing"), String::from("authentication")])]
    pub usages: Vec<String>,
    /// Extra groups the token authenticates as (system:bootstrappers:…)
    #[arg(long, value_name = "GROUP", value_delimiter = ',', default_values_t = [String::from(DEFAULT_TOKEN_GROUP)])]
    pub groups: Vec<String>,
    /// A human-readable note on the token
    #[arg(long, value_name = "TEXT")]
    pub description: Option<String>,
    /// Print the whole join command instead of the token alone
    #[arg(long)]
    pub print_join_command: bool,
    /// With --print-join-command: the control-plane join command with this certificate key
    #[arg(long, value_name = "KEY", requires = "print_join_command")]
    pub certificate_key: Option<String>,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Token ids or whole tokens
    #[arg(value_name = "TOKEN", required = true)]
    pub tokens: Vec<String>,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

pub fn run(global: &GlobalOpts, cmd: TokenCmd) -> anyhow::Result<()> {
    match cmd {
        TokenCmd::Generate => crate::output::print(format!("{}\n", crate::token::generate()?)),
        TokenCmd::Create(args) => create(global, &args),
        TokenCmd::List(args) => list(global, &args),
        TokenCmd::Delete(args) => delete(global, &args),
    }
}

/// The gateway to the cluster the kubeconfig names.
fn gateway<'h>(host: &'h Host, args: &ClusterArgs) -> anyhow::Result<Gateway<'h>> {
    let path = NodePath::new(&args.kubeconfig);
    let connection = crate::kubeconfig::connection::connection(host, &path)?
        .with_context(|| format!("the kubeconfig {path} does not exist (--kubeconfig)"))?;
    let client = Client::connect(&connection)?.with_retry(Retry::within(API_DEADLINE));
    Ok(Gateway::new(host, client))
}

fn check_kubeconfig(args: &ClusterArgs, errors: &mut Vec<FieldError>) {
    v::absolute_path("--kubeconfig", &args.kubeconfig, errors);
}

/// The token and its grant from the flags, or every problem with them (exit 2).
fn parse_create(args: &CreateArgs) -> anyhow::Result<(Token, TokenGrant)> {
    let mut errors = Vec::new();
    check_kubeconfig(&args.cluster, &mut errors);
    let token = match &args.token {
        Some(text) => match Token::parse(text) {
            Ok(t) => Some(t),
            Err(e) => {
                // The value is not echoed: it may be a real secret with a typo.
                errors.push(FieldError::new("TOKEN", "(withheld)", e.to_string()));
                None
            }
        },
        None => Some(Token::generate()?),
    };
    let ttl = match args.ttl.parse::<GoDuration>() {
        Ok(d) => Some(d),
        Err(e) => {
            errors.push(FieldError::new("--ttl", &args.ttl, e.to_string()));
            None
        }
    };
    for usage in &args.usages {
        if !TOKEN_USAGES.contains(&usage.as_str()) {
            errors.push(FieldError::new(
                "--usages",
                usage,
                format!("is not a token usage: use {}", TOKEN_USAGES.join(" or ")),
            ));
        }
    }
    for group in &args.groups {
        v::token_group("--groups", group, &mut errors);
    }
    if let Some(key) = &args.certificate_key {
        v::certificate_key("--certificate-key", key, &mut errors);
    }
    InvalidInput::check(errors)?;
    let (Some(token), Some(ttl)) = (token, ttl) else {
        anyhow::bail!("unreachable: every parse error is reported above");
    };
    let now = time::OffsetDateTime::now_utc();
    let mut usages = args.usages.clone();
    usages.dedup();
    Ok((
        token,
        TokenGrant {
            description: args.description.clone().filter(|d| !d.is_empty()),
            expiration: if ttl.0.is_zero() {
                None
            } else {
                crate::token::expiration_after(now, ttl.0)
            },
            usages,
            groups: args.groups.clone(),
        },
    ))
}

fn create(global: &GlobalOpts, args: &CreateArgs) -> anyhow::Result<()> {
    let (token, grant) = parse_create(args)?;
    let host = global.host();
    let gateway = gateway(&host, &args.cluster)?;
    tokens::create(&gateway, &token, &grant)?;
    let text = if args.print_join_command {
        join_command(&gateway, &token, args.certificate_key.as_deref())?
    } else {
        format!("{}\n", token.reveal())
    };
    if global.dry_run {
        return Ok(());
    }
    global
        .ui()
        .result(&BootstrapToken::new(&token, &grant), || text)
}

/// `kubestrap join <endpoint> --token … --discovery-token-ca-cert-hash …` from what cluster-info
/// publishes (the endpoint joining nodes are told, and the CA they pin).
fn join_command(
    gateway: &Gateway,
    token: &Token,
    certificate_key: Option<&str>,
) -> anyhow::Result<String> {
    let text = tokens::cluster_info_kubeconfig(gateway)?
        .context("kube-public/cluster-info has no kubeconfig: the join command can not be built")?;
    let config = crate::kubeconfig::KubeConfig::parse(&text)
        .context("the kubeconfig of kube-public/cluster-info")?;
    let cluster = &config
        .clusters
        .first()
        .context("kube-public/cluster-info names no cluster")?
        .cluster;
    let endpoint = cluster
        .server
        .trim_start_matches("https://")
        .trim_end_matches('/')
        .to_string();
    let ca = cluster
        .certificate_authority_data
        .as_ref()
        .context("kube-public/cluster-info carries no CA")?;
    let join = JoinCommand {
        endpoint,
        token: token.reveal(),
        ca_pins: crate::pki::pin::pins(&ca.0)?,
    };
    let control_plane = certificate_key.map(Some);
    Ok(format!("{}\n", join.render(control_plane)))
}

fn list(global: &GlobalOpts, args: &ClusterArgs) -> anyhow::Result<()> {
    let mut errors = Vec::new();
    check_kubeconfig(args, &mut errors);
    InvalidInput::check(errors)?;
    let host = global.host();
    let gateway = gateway(&host, args)?;
    let all = tokens::list(&gateway)?;
    let now = time::OffsetDateTime::now_utc();
    // A JSON stream of BootstrapToken objects (kubeadm prints one object per token).
    let rendered = match global.output {
        crate::output::Format::Json => {
            let mut out = String::new();
            for t in &all {
                out.push_str(&serde_json::to_string_pretty(t)?);
                out.push('\n');
            }
            out
        }
        crate::output::Format::Yaml => {
            let docs: anyhow::Result<Vec<String>> =
                all.iter().map(crate::yaml::to_string).collect();
            docs?.join("---\n")
        }
        _ => tokens::render_table(&all, now)?,
    };
    crate::output::print(rendered)
}

fn delete(global: &GlobalOpts, args: &DeleteArgs) -> anyhow::Result<()> {
    let mut errors = Vec::new();
    check_kubeconfig(&args.cluster, &mut errors);
    let mut ids = Vec::new();
    for text in &args.tokens {
        if crate::discovery::published::is_token_id(text) {
            ids.push(text.clone());
        } else if let Ok(t) = Token::parse(text) {
            ids.push(t.id);
        } else {
            errors.push(FieldError::new(
                "TOKEN",
                "(withheld)",
                "is neither a token id ([a-z0-9]{6}) nor a token ([a-z0-9]{6}.[a-z0-9]{16})",
            ));
        }
    }
    InvalidInput::check(errors)?;
    let host = global.host();
    let gateway = gateway(&host, &args.cluster)?;
    let ui = global.ui();
    for id in &ids {
        if !tokens::delete(&gateway, id)? {
            anyhow::bail!("bootstrap token {id:?} not found");
        }
        if !global.dry_run {
            ui.line(format!("bootstrap token {id:?} deleted"));
        }
    }
    Ok(())
}

//! `cloak-platform`: what a host platform's backend does with Cloak, in a few REST calls.
//! It holds the tenant API key (never shipped to apps), creates users, mints the short-lived
//! user tokens its apps log in with, and mints invites as links and QR codes.
//!
//! ```text
//! export CLOAK_SERVER=http://127.0.0.1:8080 CLOAK_API_KEY=ck_…
//! cloak-platform user create alice "Alice"
//! cloak-platform user token alice            # give this to Alice's app
//! cloak-platform invite create alice --png alice-invite.png
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, Result, bail};
use clap::{Parser, Subcommand};
use cloak_proto::Problem;
use cloak_proto::invites::{CreateInviteRequest, Invite};
use cloak_proto::users::{CreateUserRequest, User, UserList, UserToken};
use serde::de::DeserializeOwned;

/// A tiny host platform backend on Cloak's REST API.
#[derive(Parser)]
#[command(name = "cloak-platform", version)]
struct Cli {
    /// The Cloak server.
    #[arg(long, env = "CLOAK_SERVER", default_value = "http://127.0.0.1:8080")]
    server: String,
    /// A PEM file of CA certificates to trust besides the webpki roots (a self-hosted
    /// server).
    #[arg(long, env = "CLOAK_CA_CERT")]
    ca_cert: Option<std::path::PathBuf>,
    /// The tenant API key (`ck_…`, from `cloak-api tenant create`).
    #[arg(long, env = "CLOAK_API_KEY", hide_env_values = true)]
    api_key: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// End users.
    #[command(subcommand)]
    User(UserCommand),
    /// Invites.
    #[command(subcommand)]
    Invite(InviteCommand),
}

#[derive(Subcommand)]
enum UserCommand {
    /// Creates a user with the platform's own id for them; prints the user as JSON.
    Create {
        external_id: String,
        display_name: String,
    },
    /// Mints a short-lived user token for the user's app; prints it.
    Token { external_id: String },
}

#[derive(Subcommand)]
enum InviteCommand {
    /// Mints an invite for a user; prints it as JSON and can save its QR code.
    Create {
        external_id: String,
        #[arg(long, default_value_t = 1)]
        max_uses: u32,
        #[arg(long, default_value_t = 86_400)]
        expires_in: u32,
        /// Saves the QR code (PNG) here.
        #[arg(long)]
        png: Option<PathBuf>,
    },
}

struct Api {
    http: reqwest::Client,
    server: String,
    key: String,
}

impl Api {
    async fn call<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&impl serde::Serialize>,
    ) -> Result<T> {
        let resp = self.raw(method, path, body).await?;
        Ok(resp.json().await?)
    }

    async fn raw(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&impl serde::Serialize>,
    ) -> Result<reqwest::Response> {
        let url = format!("{}{path}", self.server.trim_end_matches('/'));
        let mut req = self.http.request(method, url).bearer_auth(&self.key);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.context("cannot reach the Cloak server")?;
        if !resp.status().is_success() {
            let status = resp.status();
            match resp.json::<Problem>().await {
                Ok(p) => bail!("{p}"),
                Err(_) => bail!("the server answered {status}"),
            }
        }
        Ok(resp)
    }

    async fn user(&self, external_id: &str) -> Result<User> {
        let mut url =
            reqwest::Url::parse(&format!("{}/v1/users", self.server.trim_end_matches('/')))
                .context("--server is not a URL")?;
        url.query_pairs_mut()
            .append_pair("external_id", external_id);
        let path = format!("/v1/users?{}", url.query().unwrap_or_default());
        let list: UserList = self.call(reqwest::Method::GET, &path, None::<&()>).await?;
        list.items
            .into_iter()
            .next()
            .with_context(|| format!("no user with external id {external_id:?}"))
    }
}

/// An HTTP client over rustls (ring) trusting the webpki roots and `ca_cert`.
fn http_client(ca_cert: Option<&std::path::Path>) -> Result<reqwest::Client> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = ca_cert {
        for cert in CertificateDer::pem_file_iter(path)
            .with_context(|| format!("cannot read {}", path.display()))?
        {
            roots.add(cert.context("a certificate in --ca-cert is malformed")?)?;
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(reqwest::Client::builder()
        .use_preconfigured_tls(config)
        .build()?)
}

async fn run(cli: Cli) -> Result<()> {
    let api = Api {
        http: http_client(cli.ca_cert.as_deref())?,
        server: cli.server,
        key: cli.api_key,
    };
    match cli.command {
        Command::User(UserCommand::Create {
            external_id,
            display_name,
        }) => {
            let body = CreateUserRequest {
                external_id,
                display_name,
            };
            let user: User = api
                .call(reqwest::Method::POST, "/v1/users", Some(&body))
                .await?;
            println!("{}", serde_json::to_string(&user)?);
        }
        Command::User(UserCommand::Token { external_id }) => {
            let user = api.user(&external_id).await?;
            let path = format!("/v1/users/{}/tokens", user.id);
            let token: UserToken = api.call(reqwest::Method::POST, &path, None::<&()>).await?;
            println!("{}", token.token);
        }
        Command::Invite(InviteCommand::Create {
            external_id,
            max_uses,
            expires_in,
            png,
        }) => {
            let user = api.user(&external_id).await?;
            let body = CreateInviteRequest {
                inviter_user_id: Some(user.id),
                max_uses,
                expires_in_secs: expires_in,
                note: None,
            };
            let invite: Invite = api
                .call(reqwest::Method::POST, "/v1/invites", Some(&body))
                .await?;
            if let Some(path) = png {
                let qr = format!("/v1/invites/{}/qr.png", invite.code);
                let bytes = api
                    .raw(reqwest::Method::GET, &qr, None::<&()>)
                    .await?
                    .bytes()
                    .await?;
                std::fs::write(&path, &bytes)
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
            println!("{}", serde_json::to_string(&invite)?);
        }
    }
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

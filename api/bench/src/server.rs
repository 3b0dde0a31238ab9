//! Server processes the benchmark starts itself (so it knows their PIDs): `cloak-api`
//! nodes and the naive Node.js relay. Each is killed when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use serde::Deserialize;

/// How to run `cloak-api`.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The `cloak-api` binary.
    pub binary: PathBuf,
    /// `CLOAK_DATABASE_URL`.
    pub database_url: String,
    /// `CLOAK_REDIS_URL`, if any.
    pub redis_url: Option<String>,
    /// Extra `CLOAK_*` settings (`KEY=VALUE`).
    pub extra_env: Vec<(String, String)>,
    /// Where server logs go.
    pub log_dir: PathBuf,
}

/// A child process that is killed on drop.
pub struct Process {
    child: Child,
    name: String,
}

impl Process {
    /// Its PID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fails if it has exited.
    pub fn check_alive(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("{} exited early ({status})", self.name);
        }
        Ok(())
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running `cloak-api` node.
pub struct CloakNode {
    /// The process.
    pub process: Process,
    /// `http://127.0.0.1:port`.
    pub base_url: String,
}

/// The `cloak-api` binary: the given path, or the one next to this executable.
pub fn find_server_binary(given: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = given {
        return Ok(p.to_path_buf());
    }
    let here = std::env::current_exe()?;
    let sibling = here
        .parent()
        .map(|d| d.join("cloak-api"))
        .ok_or_else(|| anyhow!("no directory for {}", here.display()))?;
    if sibling.exists() {
        Ok(sibling)
    } else {
        bail!(
            "no cloak-api binary at {}; build it with `cargo build --release -p cloak-api` or pass --server-bin",
            sibling.display()
        )
    }
}

fn cloak_command(config: &ServerConfig) -> Command {
    let mut cmd = Command::new(&config.binary);
    for (key, _) in std::env::vars() {
        if key.starts_with("CLOAK_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("CLOAK_DATABASE_URL", &config.database_url)
        .env("CLOAK_LOG", "warn")
        .env("CLOAK_LOG_FORMAT", "text")
        // Every bench device logs in from 127.0.0.1, and one tenant makes all requests:
        // the service limits would measure themselves (override with --server-env).
        .env("CLOAK_LOGIN_PER_IP_PER_MINUTE", "0")
        .env("CLOAK_TENANT_REQUESTS_PER_SEC", "1000000");
    if let Some(redis) = &config.redis_url {
        cmd.env("CLOAK_REDIS_URL", redis);
    }
    for (k, v) in &config.extra_env {
        cmd.env(k, v);
    }
    cmd
}

/// A free loopback port (bound and released; the server binds it right after).
pub fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// Starts a node and waits until `/readyz` answers 200.
pub async fn start_node(config: &ServerConfig, name: &str) -> Result<CloakNode> {
    let port = free_port()?;
    let log_path = config.log_dir.join(format!("{name}.log"));
    let log = std::fs::File::create(&log_path)
        .with_context(|| format!("creating {}", log_path.display()))?;
    let child = cloak_command(config)
        .env("CLOAK_BIND", format!("127.0.0.1:{port}"))
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {}", config.binary.display()))?;
    let mut process = Process {
        child,
        name: format!("cloak-api {name} (log: {})", log_path.display()),
    };
    let base_url = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        process.check_alive()?;
        if let Ok(r) = http.get(format!("{base_url}/readyz")).send().await
            && r.status().is_success()
        {
            break;
        }
        if Instant::now() > deadline {
            bail!("{} not ready within 60 s", process.name);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(CloakNode { process, base_url })
}

/// A tenant created by `cloak-api tenant create --json`.
#[derive(Debug, Clone, Deserialize)]
pub struct Tenant {
    /// Its id.
    pub tenant_id: uuid::Uuid,
    /// Its first API key.
    pub api_key: String,
}

/// Creates a tenant through the operator CLI, against the same database.
pub fn create_tenant(config: &ServerConfig) -> Result<Tenant> {
    let out = cloak_command(config)
        .args(["tenant", "create", "--name", "bench", "--json"])
        .stdin(Stdio::null())
        .output()
        .context("running cloak-api tenant create")?;
    if !out.status.success() {
        bail!(
            "cloak-api tenant create failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    serde_json::from_slice(&out.stdout).context("parsing the tenant create output")
}

/// Starts the naive relay (`node relay.js`) and waits until it accepts connections.
/// Runs `npm install` first if `node_modules` is missing.
pub async fn start_naive_relay(dir: &Path, log_dir: &Path) -> Result<(Process, String)> {
    if !dir.join("node_modules").join("ws").exists() {
        let status = Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--silent"])
            .current_dir(dir)
            .status()
            .context("running npm install for the naive relay")?;
        if !status.success() {
            bail!("npm install failed in {}", dir.display());
        }
    }
    let port = free_port()?;
    let log_path = log_dir.join("naive-relay.log");
    let log = std::fs::File::create(&log_path)?;
    let child = Command::new("node")
        .arg("relay.js")
        .current_dir(dir)
        .env("PORT", port.to_string())
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("starting node relay.js")?;
    let mut process = Process {
        child,
        name: format!("naive relay (log: {})", log_path.display()),
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        process.check_alive()?;
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            break;
        }
        if Instant::now() > deadline {
            bail!("{} not listening within 20 s", process.name);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok((process, format!("ws://127.0.0.1:{port}")))
}

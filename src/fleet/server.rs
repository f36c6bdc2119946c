//! The server a fleet talks to: a URL given by the user, the embedded sandbox in-process, or
//! the sandbox as a separate `posemu sandbox` process (so client and server costs can be told
//! apart).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use super::procstat::{self, Usage};
use posemu_sandbox::{FleetSeed, Sandbox, SandboxConfig};

#[derive(Debug, Clone)]
pub enum ServerChoice {
    /// `--server URL`.
    Url(String),
    /// The embedded sandbox, in this process.
    Embedded,
    /// `--sandbox-process`: this executable's `sandbox` subcommand as a child process.
    Process { exe: PathBuf },
}

/// What the sandbox is started with.
pub struct SandboxSetup {
    pub fleet: Option<FleetSeed>,
    pub code_ttl: Option<Duration>,
}

/// A running server; dropping it stops an embedded or child sandbox.
pub struct Server {
    pub url: String,
    /// How the report describes it.
    pub description: String,
    _embedded: Option<Sandbox>,
    child: Option<Child>,
}

/// Lines the child may print before its address line (none today; a margin for warnings).
const MAX_PREAMBLE_LINES: usize = 20;
const LISTENING: &str = "posemu sandbox listening on ";

impl Server {
    pub async fn start(choice: &ServerChoice, setup: SandboxSetup) -> Result<Server, String> {
        match choice {
            ServerChoice::Url(url) => Ok(Server {
                url: url.trim_end_matches('/').to_string(),
                description: url.clone(),
                _embedded: None,
                child: None,
            }),
            ServerChoice::Embedded => {
                let mut cfg = SandboxConfig {
                    fleet: setup.fleet,
                    ..SandboxConfig::default()
                };
                if let Some(t) = setup.code_ttl {
                    cfg.code_ttl = t;
                }
                let sb = Sandbox::start(cfg)
                    .await
                    .map_err(|e| format!("embedded sandbox: {e}"))?;
                Ok(Server {
                    url: sb.url(),
                    description: "embedded sandbox (in-process)".into(),
                    _embedded: Some(sb),
                    child: None,
                })
            }
            ServerChoice::Process { exe } => Self::spawn(exe, setup).await,
        }
    }

    async fn spawn(exe: &PathBuf, setup: SandboxSetup) -> Result<Server, String> {
        let mut cmd = Command::new(exe);
        cmd.args(["sandbox", "--listen", "127.0.0.1:0", "--quiet"]);
        if let Some(f) = &setup.fleet {
            // the seed goes by environment, never on a command line `ps` shows
            cmd.env("POSEMU_FLEET_SEED", &f.seed)
                .args(["--fleet-prefix", &f.prefix]);
        }
        if let Some(t) = setup.code_ttl {
            cmd.args(["--code-ttl", &t.as_secs().max(1).to_string()]);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {} sandbox: {e}", exe.display()))?;
        let stdout = child
            .stdout
            .take()
            .ok_or("the sandbox process has no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let read = async {
            for _ in 0..MAX_PREAMBLE_LINES {
                match lines.next_line().await {
                    Ok(Some(l)) => {
                        if let Some(url) = l.trim().strip_prefix(LISTENING) {
                            return Ok(url.to_string());
                        }
                    }
                    Ok(None) => break,
                    Err(e) => return Err(format!("reading the sandbox process: {e}")),
                }
            }
            Err("the sandbox process did not say where it listens".to_string())
        };
        let url = tokio::time::timeout(Duration::from_secs(30), read)
            .await
            .map_err(|_| "the sandbox process did not start within 30 s".to_string())??;
        // keep draining its stdout so the child never blocks on a full pipe
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Server {
            description: format!("sandbox process (pid {})", child.id().unwrap_or(0)),
            url,
            _embedded: None,
            child: Some(child),
        })
    }

    /// Stops the server; for a child sandbox, answers what it cost (CPU, peak RSS).
    pub async fn stop(mut self) -> Option<Usage> {
        let mut child = self.child.take()?;
        let _ = child.start_kill();
        let _ = child.wait().await;
        // RUSAGE_CHILDREN covers waited children: the sandbox is our only one
        Some(procstat::children())
    }
}

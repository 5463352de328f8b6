//! Driving the compose cluster through the `docker` command line: bring it up fresh, find each
//! member's container and network, and inject and heal faults.

use std::path::PathBuf;
use std::time::Duration;

use tokio::process::Command;

use crate::Error;

/// The longest any one docker command may take.
const DOCKER_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs a command; its standard output, or an error with its standard error.
async fn run(program: &str, args: &[String], env: &[(String, String)]) -> Result<String, Error> {
    let command_line = format!("{program} {}", args.join(" "));
    let mut command = Command::new(program);
    command.args(args).kill_on_drop(true);
    for (k, v) in env {
        command.env(k, v);
    }
    let output = tokio::time::timeout(DOCKER_TIMEOUT, command.output())
        .await
        .map_err(|_| Error::Docker {
            command: command_line.clone(),
            message: format!("no answer in {DOCKER_TIMEOUT:?}"),
        })?
        .map_err(|e| Error::Docker {
            command: command_line.clone(),
            message: e.to_string(),
        })?;
    if !output.status.success() {
        return Err(Error::Docker {
            command: command_line,
            message: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// `docker <args>`.
pub async fn docker(args: &[&str]) -> Result<String, Error> {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    run("docker", &args, &[]).await
}

/// One compose project made from a compose file.
pub struct Compose {
    /// `docker compose` (v2) or `docker-compose` (v1), whichever is installed.
    program: Vec<String>,
    file: PathBuf,
    project: String,
    env: Vec<(String, String)>,
}

impl Compose {
    /// Finds the compose tool. `env` is handed to every compose command (the compose file's
    /// variables).
    pub async fn new(
        file: PathBuf,
        project: String,
        env: Vec<(String, String)>,
    ) -> Result<Self, Error> {
        let program = if docker(&["compose", "version"]).await.is_ok() {
            vec!["docker".to_string(), "compose".to_string()]
        } else if run("docker-compose", &["version".to_string()], &[])
            .await
            .is_ok()
        {
            vec!["docker-compose".to_string()]
        } else {
            return Err(Error::Docker {
                command: "docker compose version".into(),
                message: "neither `docker compose` nor `docker-compose` is installed".into(),
            });
        };
        Ok(Self {
            program,
            file,
            project,
            env,
        })
    }

    async fn compose(&self, args: &[&str]) -> Result<String, Error> {
        let mut all: Vec<String> = self.program[1..].to_vec();
        all.extend([
            "-f".to_string(),
            self.file.display().to_string(),
            "-p".to_string(),
            self.project.clone(),
        ]);
        all.extend(args.iter().map(|s| s.to_string()));
        run(&self.program[0], &all, &self.env).await
    }

    /// Removes the project's containers and volumes, then starts it again from nothing.
    pub async fn up_fresh(&self) -> Result<(), Error> {
        self.down().await?;
        self.compose(&["up", "-d"]).await.map(drop)
    }

    /// Stops and removes the project's containers, network and volumes.
    pub async fn down(&self) -> Result<(), Error> {
        self.compose(&["down", "-v", "--remove-orphans", "-t", "5"])
            .await
            .map(drop)
    }

    /// The container running `service`.
    pub async fn container(&self, service: &str) -> Result<String, Error> {
        let id = self.compose(&["ps", "-q", service]).await?;
        match id.lines().next() {
            Some(id) if !id.is_empty() => Ok(id.to_string()),
            _ => Err(Error::Docker {
                command: format!("compose ps -q {service}"),
                message: "no container".into(),
            }),
        }
    }
}

/// The (one) network a container is attached to.
pub async fn network_of(container: &str) -> Result<String, Error> {
    let names = docker(&[
        "inspect",
        "-f",
        "{{range $name, $net := .NetworkSettings.Networks}}{{$name}} {{end}}",
        container,
    ])
    .await?;
    names
        .split_whitespace()
        .next()
        .map(str::to_string)
        .ok_or_else(|| Error::Docker {
            command: format!("docker inspect {container}"),
            message: "the container is on no network".into(),
        })
}

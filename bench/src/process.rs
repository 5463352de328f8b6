//! A `mainstay` subcommand (an apiserver, a scheduler, a controller-manager, simulated nodes) run
//! as a child of the benchmark: its output goes to a log file, and it is killed when dropped or
//! when the benchmark itself dies.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::procstat::{self, ProcSample};
use crate::Error;

/// A child process. Dropping it kills the process (SIGKILL) and removes its log unless the
/// thread is panicking.
pub struct Child {
    name: String,
    pid: u32,
    log: PathBuf,
    exited: Arc<AtomicBool>,
    waiter: Option<std::thread::JoinHandle<()>>,
}

impl Child {
    /// Runs `bin args…` with stdout and stderr to `<work_dir>/mainstay-bench-<name>-<pid>.log`.
    pub fn spawn(name: &str, bin: &Path, args: &[String], work_dir: &Path) -> Result<Child, Error> {
        let log = work_dir.join(format!("mainstay-bench-{name}-{}.log", std::process::id()));
        let file = std::fs::File::create(&log).map_err(Error::io(&log))?;
        let file2 = file.try_clone().map_err(Error::io(&log))?;
        let mut command = std::process::Command::new(bin);
        command
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(file)
            .stderr(file2);
        let exited = Arc::new(AtomicBool::new(false));
        let (tx, rx) = std::sync::mpsc::channel();
        // The child is forked by, and waited for on, a thread of its own that lives exactly as
        // long as the child: it dies with us (PR_SET_PDEATHSIG fires when the forking thread
        // exits), and never earlier.
        let waiter = {
            let exited = exited.clone();
            std::thread::Builder::new()
                .name(format!("child-{name}"))
                .spawn(move || {
                    use std::os::unix::process::CommandExt as _;
                    // SAFETY: the closure only calls async-signal-safe functions (prctl, getppid,
                    // _exit).
                    unsafe {
                        let parent = libc::getpid();
                        command.pre_exec(move || {
                            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                                return Err(std::io::Error::last_os_error());
                            }
                            if libc::getppid() != parent {
                                libc::_exit(1);
                            }
                            Ok(())
                        });
                    }
                    match command.spawn() {
                        Ok(mut child) => {
                            let _ = tx.send(Ok(child.id()));
                            let _ = child.wait();
                        }
                        Err(e) => {
                            let _ = tx.send(Err(e));
                        }
                    }
                    exited.store(true, Ordering::SeqCst);
                })
                .map_err(|e| Error::Setup(format!("starting a thread: {e}")))?
        };
        let pid = rx
            .recv()
            .map_err(|_| Error::Setup(format!("the thread of {name} died")))?
            .map_err(|e| Error::Setup(format!("running {} ({name}): {e}", bin.display())))?;
        Ok(Child {
            name: name.to_string(),
            pid,
            log,
            exited,
            waiter: Some(waiter),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn log(&self) -> &Path {
        &self.log
    }

    pub fn exited(&self) -> bool {
        self.exited.load(Ordering::SeqCst)
    }

    /// Resident memory and CPU time so far (`None` once it has exited).
    pub fn sample(&self) -> Option<ProcSample> {
        if self.exited() {
            return None;
        }
        procstat::sample(self.pid)
    }

    /// The last `lines` lines of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Sends SIGTERM and waits up to `within` for the process to exit; whether it did.
    pub fn terminate(&self, within: std::time::Duration) -> bool {
        if !self.exited() {
            // SAFETY: kill(2) on the child we started (not yet reaped, so its pid is still ours).
            unsafe {
                libc::kill(self.pid as libc::pid_t, libc::SIGTERM);
            }
        }
        let deadline = std::time::Instant::now() + within;
        while !self.exited() {
            if std::time::Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        true
    }

    /// An error naming this process, with the end of its log.
    pub fn failure(&self, what: &str) -> Error {
        Error::Setup(format!(
            "{what} ({}{}); its log ({}):\n{}",
            self.name,
            if self.exited() { ", exited" } else { "" },
            self.log.display(),
            self.log_tail(30)
        ))
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if !self.exited() {
            // SAFETY: kill(2) on the child we started (not yet reaped, so its pid is still ours).
            unsafe {
                libc::kill(self.pid as libc::pid_t, libc::SIGKILL);
            }
        }
        if let Some(waiter) = self.waiter.take() {
            let _ = waiter.join();
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}

/// A free loopback port from the kernel's ephemeral range (outside testkit's 20000..32000).
pub fn free_port() -> Result<u16, Error> {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| Error::Setup(format!("finding a free loopback port: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_is_logged_sampled_and_killed_on_drop() {
        let dir = std::env::temp_dir();
        let child = Child::spawn(
            "sleep-test",
            Path::new("/bin/sh"),
            &["-c".into(), "echo hello; exec sleep 30".into()],
            &dir,
        )
        .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while child.log_tail(1) != "hello" {
            assert!(std::time::Instant::now() < deadline, "no output");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert!(child.sample().is_some());
        assert!(!child.exited());
        let (pid, log) = (child.pid(), child.log().to_path_buf());
        drop(child);
        assert!(procstat::sample(pid).is_none(), "killed and reaped");
        assert!(!log.exists(), "log removed");
    }

    #[test]
    fn terminate_waits_for_the_exit() {
        let child = Child::spawn(
            "term-test",
            Path::new("/bin/sh"),
            &["-c".into(), "exec sleep 30".into()],
            &std::env::temp_dir(),
        )
        .unwrap();
        assert!(child.terminate(std::time::Duration::from_secs(10)));
        assert!(child.exited() && child.sample().is_none());
    }
}

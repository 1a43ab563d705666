//! The processes the demo starts: spawned with their output in a log file, watched, and all
//! killed when the demo ends, however it ends (normal exit, error, Ctrl-C, or the demo itself
//! being killed: `PR_SET_PDEATHSIG`).

use std::fs::File;
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// One started process.
struct Proc {
    name: String,
    child: Child,
    log: PathBuf,
}

/// The demo's children; every one is killed on drop.
#[derive(Default)]
pub struct Procs {
    procs: Vec<Proc>,
}

/// A child that exited on its own.
#[derive(Debug)]
pub struct Died {
    /// Its name.
    pub name: String,
    /// How it ended.
    pub status: ExitStatus,
    /// Where its output went.
    pub log: PathBuf,
}

impl Procs {
    /// Starts `cmd` with stdout and stderr appended to `log`.
    pub fn spawn(&mut self, name: &str, mut cmd: Command, log: &Path) -> std::io::Result<()> {
        let out = File::create(log)?;
        let err = out.try_clone()?;
        // Own process group: a terminal's Ctrl-C reaches only the demo, which then stops its
        // children in order instead of having them die mid-request on their own.
        cmd.stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
        unsafe {
            cmd.pre_exec(|| {
                // The child gets SIGKILL when the demo dies, even by SIGKILL: no orphans.
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
                Ok(())
            });
        }
        let child = cmd.spawn()?;
        self.procs.push(Proc {
            name: name.to_string(),
            child,
            log: log.to_path_buf(),
        });
        Ok(())
    }

    /// Name and process id of every child.
    pub fn pids(&self) -> Vec<(String, u32)> {
        self.procs
            .iter()
            .map(|p| (p.name.clone(), p.child.id()))
            .collect()
    }

    /// How many were started.
    pub fn len(&self) -> usize {
        self.procs.len()
    }

    /// The first child that has exited, if any.
    pub fn first_dead(&mut self) -> Option<Died> {
        self.procs
            .iter_mut()
            .find_map(|p| match p.child.try_wait() {
                Ok(Some(status)) => Some(Died {
                    name: p.name.clone(),
                    status,
                    log: p.log.clone(),
                }),
                _ => None,
            })
    }

    /// Kills every child and reaps it.
    pub fn kill_all(&mut self) {
        for p in &mut self.procs {
            let _ = p.child.kill();
        }
        for p in &mut self.procs {
            let _ = p.child.wait();
        }
        self.procs.clear();
    }
}

impl Drop for Procs {
    fn drop(&mut self) {
        self.kill_all();
    }
}

/// Ports are chosen here, below Linux's ephemeral range (32768-60999): a port picked by
/// binding port 0 is ephemeral, and could be taken by some outgoing connection while the
/// Envoys are still compiling the module, before they bind it.
const PORT_RANGE: std::ops::Range<u16> = 20000..32000;

/// `n` distinct free loopback ports below the ephemeral range (each checked by binding it;
/// all released on return). The start is spread by process id so parallel demos rarely meet.
pub fn free_ports(n: usize) -> std::io::Result<Vec<u16>> {
    let span = u32::from(PORT_RANGE.end - PORT_RANGE.start);
    let offset = (std::process::id().wrapping_mul(7919)) % span;
    let mut held = Vec::with_capacity(n);
    for i in 0..span {
        if held.len() == n {
            break;
        }
        let port = PORT_RANGE.start + u16::try_from((offset + i) % span).unwrap_or(0);
        if let Ok(l) = TcpListener::bind(("127.0.0.1", port)) {
            held.push(l);
        }
    }
    if held.len() < n {
        return Err(std::io::Error::other(format!(
            "only {} free ports in {PORT_RANGE:?}",
            held.len()
        )));
    }
    held.iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect()
}

/// True once something accepts connections on `port`.
pub fn accepting(port: u16) -> bool {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

/// True once Envoy's admin `/ready` answers 200 (`LIVE`).
pub fn envoy_ready(agent: &ureq::Agent, admin: u16) -> bool {
    agent
        .get(&format!("http://127.0.0.1:{admin}/ready"))
        .call()
        .is_ok_and(|r| r.status().as_u16() == 200)
}

/// Polls `ready` every 100 ms until it holds, `deadline` passes (false) or `abort` says stop.
pub fn wait_until(
    deadline: Instant,
    mut abort: impl FnMut() -> bool,
    mut ready: impl FnMut() -> bool,
) -> bool {
    loop {
        if ready() {
            return true;
        }
        if abort() || Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct() {
        let mut p = free_ports(20).unwrap();
        assert!(p.iter().all(|x| PORT_RANGE.contains(x)), "{p:?}");
        p.sort_unstable();
        p.dedup();
        assert_eq!(p.len(), 20);
    }

    #[test]
    fn children_are_killed_on_drop_and_deaths_seen() {
        let dir = tempfile::tempdir().unwrap();
        let mut procs = Procs::default();
        let mut sleep = Command::new("sleep");
        sleep.arg("30");
        procs
            .spawn("sleeper", sleep, &dir.path().join("s.log"))
            .unwrap();
        let mut quick = Command::new("sh");
        quick.args(["-c", "echo bye; exit 3"]);
        procs
            .spawn("quick", quick, &dir.path().join("q.log"))
            .unwrap();
        let died = (0..50)
            .find_map(|_| {
                std::thread::sleep(Duration::from_millis(50));
                procs.first_dead()
            })
            .unwrap();
        assert_eq!(died.name, "quick");
        assert_eq!(died.status.code(), Some(3));
        assert_eq!(std::fs::read_to_string(&died.log).unwrap(), "bye\n");
        let pid = procs.procs[0].child.id();
        drop(procs);
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists() || {
                // A zombie would still show; reaped means gone.
                std::fs::read_to_string(format!("/proc/{pid}/stat")).is_err()
            }
        );
    }
}

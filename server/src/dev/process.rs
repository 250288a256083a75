//! A child service process (OpenBao, PostgreSQL in tests) that never outlives its parent.

use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// A running child process, stopped with its stop signal when dropped.
#[derive(Debug)]
pub struct ServiceProcess {
    name: String,
    child: Child,
    stop_signal: Signal,
}

impl ServiceProcess {
    /// Spawns `command`. On Linux the kernel sends the child `stop_signal` if the spawning
    /// thread dies, so a crash or `kill -9` of meshport leaves no service behind. Spawn from a
    /// thread that lives as long as the service should (the main thread, for example).
    pub fn spawn(name: &str, mut command: Command, stop_signal: Signal) -> io::Result<Self> {
        #[cfg(target_os = "linux")]
        // SAFETY: the closure only makes the prctl system call, which is async-signal-safe.
        unsafe {
            command.pre_exec(move || {
                nix::sys::prctl::set_pdeathsig(stop_signal).map_err(io::Error::from)
            });
        }
        let child = command.spawn()?;
        Ok(Self { name: name.to_owned(), child, stop_signal })
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// How the process ended, once it has.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Sends the stop signal and waits up to `grace` for the process to end, then kills it.
    /// Returns how it ended by itself (or had ended before), or `None` when it had to be
    /// killed. Blocking.
    pub fn stop(&mut self, grace: Duration) -> Option<ExitStatus> {
        if !self.is_running() {
            return self.exit_status();
        }
        let pid = Pid::from_raw(self.child.id() as i32);
        let _ = kill(pid, self.stop_signal);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if !self.is_running() {
                tracing::debug!(service = %self.name, "stopped");
                return self.exit_status();
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        tracing::warn!(service = %self.name, "did not stop in time; killing it");
        let _ = self.child.kill();
        let _ = self.child.wait();
        None
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(10));
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_loopback_port() -> io::Result<u16> {
    Ok(std::net::TcpListener::bind(("127.0.0.1", 0))?.local_addr()?.port())
}

/// A loopback port that was free a moment ago, with the port after it free too (OpenBao's
/// cluster listener takes the API port plus one).
pub fn free_loopback_port_pair() -> io::Result<u16> {
    for _ in 0..20 {
        let port = free_loopback_port()?;
        if port < u16::MAX && std::net::TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            return Ok(port);
        }
    }
    Err(io::Error::new(io::ErrorKind::AddrInUse, "no two adjacent free loopback ports"))
}

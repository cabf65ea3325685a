//! Running a program so that its `syncfs(2)` and `sync(2)` reach the
//! filesystem: the kernel does not pass them to a FUSE server (only
//! virtiofs gets `FUSE_SYNCFS`), so the program runs under ptrace and each
//! such call, on entry, makes everything durable before the kernel runs it.
//!
//! The child starts as `sh -c 'kill -STOP $$; exec "$0" "$@"'`: stopped
//! before the program runs, it is seized with every thread and child it
//! will have, then continued. All ptrace calls and waits happen on one
//! thread made for the run, which waits only for its own children
//! (`__WNOTHREAD`), so other threads' children are never reaped here.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::io;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::ptrace::{self, Options};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::fuse::Inner;
use crate::state::Gate;

/// How a traced run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The program exited with this code.
    Exited(i32),
    /// A signal ended it (SIGKILL after a power cut, or the deadline).
    Killed,
}

/// Runs `program` with `args` under the tracer; `setup` sets stdio,
/// environment and directory. Kills it when the power is cut or after
/// `deadline`.
pub(crate) fn run(
    inner: &Arc<Mutex<Inner>>,
    program: &OsStr,
    args: &[&OsStr],
    deadline: Duration,
    setup: impl FnOnce(&mut Command) + Send,
) -> io::Result<Ended> {
    std::thread::scope(|s| {
        s.spawn(move || {
            let mut cmd = Command::new("sh");
            cmd.arg("-c")
                .arg("kill -STOP $$; exec \"$0\" \"$@\"")
                .arg(program)
                .args(args);
            setup(&mut cmd);
            let child = cmd.spawn()?;
            let main = Pid::from_raw(child.id() as i32);
            let mut tracer = Tracer {
                inner,
                main,
                tracees: BTreeSet::from([main]),
                killed: false,
                ended: None,
            };
            let watchdog = Watchdog::start(main, deadline);
            let r = tracer.attach().and_then(|()| tracer.run());
            drop(watchdog);
            if r.is_err() {
                tracer.kill_all();
            }
            r
        })
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("tracer thread panicked")))
    })
}

struct Tracer<'a> {
    inner: &'a Arc<Mutex<Inner>>,
    main: Pid,
    tracees: BTreeSet<Pid>,
    killed: bool,
    ended: Option<Ended>,
}

fn errno(e: nix::Error) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

/// ESRCH means the tracee died meanwhile: its exit is reported by waitpid.
fn resume(pid: Pid, sig: Option<Signal>) -> io::Result<()> {
    match ptrace::syscall(pid, sig) {
        Ok(()) | Err(nix::Error::ESRCH) => Ok(()),
        Err(e) => Err(errno(e)),
    }
}

impl Tracer<'_> {
    fn attach(&mut self) -> io::Result<()> {
        let flags = WaitPidFlag::WUNTRACED | WaitPidFlag::__WNOTHREAD;
        match waitpid(self.main, Some(flags)).map_err(errno)? {
            WaitStatus::Stopped(_, Signal::SIGSTOP) => {}
            other => return Err(io::Error::other(format!("traced child: {other:?}"))),
        }
        let opts = Options::PTRACE_O_TRACESYSGOOD
            | Options::PTRACE_O_TRACECLONE
            | Options::PTRACE_O_TRACEFORK
            | Options::PTRACE_O_TRACEVFORK
            | Options::PTRACE_O_TRACEEXEC
            | Options::PTRACE_O_EXITKILL;
        ptrace::seize(self.main, opts).map_err(errno)?;
        kill(self.main, Signal::SIGCONT).map_err(errno)
    }

    fn run(&mut self) -> io::Result<Ended> {
        let flags = WaitPidFlag::__WALL | WaitPidFlag::__WNOTHREAD;
        while !self.tracees.is_empty() {
            let st = match waitpid(None, Some(flags)) {
                Ok(st) => st,
                Err(nix::Error::EINTR) => continue,
                Err(nix::Error::ECHILD) => break,
                Err(e) => return Err(errno(e)),
            };
            match st {
                WaitStatus::Exited(p, code) => self.gone(p, Ended::Exited(code)),
                WaitStatus::Signaled(p, _, _) => self.gone(p, Ended::Killed),
                WaitStatus::Stopped(p, sig) => resume(p, Some(sig))?,
                WaitStatus::PtraceEvent(p, _, ev) => {
                    if ev == libc::PTRACE_EVENT_CLONE
                        || ev == libc::PTRACE_EVENT_FORK
                        || ev == libc::PTRACE_EVENT_VFORK
                    {
                        if let Ok(new) = ptrace::getevent(p) {
                            self.tracees.insert(Pid::from_raw(new as i32));
                        }
                    }
                    self.tracees.insert(p);
                    resume(p, None)?;
                }
                WaitStatus::PtraceSyscall(p) => {
                    self.on_syscall(p);
                    resume(p, None)?;
                }
                _ => {}
            }
            if !self.killed && self.inner.lock().is_ok_and(|g| g.m.is_dead()) {
                self.kill_all();
            }
        }
        Ok(self.ended.unwrap_or(Ended::Killed))
    }

    fn gone(&mut self, p: Pid, how: Ended) {
        self.tracees.remove(&p);
        if p == self.main {
            self.ended = Some(if self.killed { Ended::Killed } else { how });
        }
    }

    fn on_syscall(&mut self, p: Pid) {
        if let Some(nr) = entered_syscall(p) {
            if nr == libc::SYS_syncfs || nr == libc::SYS_sync {
                let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
                if g.m.syncfs() == Gate::Dead {
                    drop(g);
                    self.kill_all();
                }
            }
        }
    }

    /// SIGKILL to every process traced (a thread's ID kills its process).
    fn kill_all(&mut self) {
        self.killed = true;
        for p in &self.tracees {
            let _ = kill(*p, Signal::SIGKILL);
        }
    }
}

/// The number of the system call a tracee is entering (None at an exit).
#[cfg(target_arch = "x86_64")]
fn entered_syscall(p: Pid) -> Option<i64> {
    let regs = ptrace::getregs(p).ok()?;
    // At entry the kernel has put -ENOSYS in rax; at exit rax is the result.
    (regs.rax as i64 == -(libc::ENOSYS as i64)).then_some(regs.orig_rax as i64)
}

#[cfg(not(target_arch = "x86_64"))]
fn entered_syscall(_p: Pid) -> Option<i64> {
    tracing::warn!("crashfs: syncfs is only traced on x86_64");
    None
}

/// Kills the traced program when it runs past its deadline.
struct Watchdog {
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watchdog {
    fn start(main: Pid, deadline: Duration) -> Self {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(deadline)
            {
                tracing::warn!("crashfs: traced program {main} ran past {deadline:?}; killing it");
                let _ = kill(main, Signal::SIGKILL);
            }
        });
        Watchdog {
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

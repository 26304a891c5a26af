//! The code that runs in the cloned child until it execs the user's command, and the plan it
//! follows. Everything in a plan is built by the parent; the child only reads it.

use std::ffi::CString;
use std::os::fd::RawFd;

use nix::errno::Errno;
use nix::sched::CloneFlags;

use super::channel::{self, Failure, Go, Stage};
use super::process;
use super::rootfs::{RootfsPlan, setup_rootfs};
use super::syscall::{CArray, LinuxSyscall, Syscall};

/// containerd's default when neither the image nor the pod sets PATH.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

pub struct Credentials {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
}

/// The command, with argv[0] already expanded into the paths to try.
pub struct CommandPlan {
    pub name: String,
    candidates: Vec<CString>,
    argv: CArray,
    envp: CArray,
}

/// Later entries override earlier ones with the same name; order of first appearance is kept.
pub fn merge_env(base: &[(String, String)], overrides: &[(String, String)]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::with_capacity(base.len() + overrides.len());
    for (k, v) in base.iter().chain(overrides) {
        match out.iter_mut().find(|(name, _)| name == k) {
            Some(slot) => slot.1.clone_from(v),
            None => out.push((k.clone(), v.clone())),
        }
    }
    out
}

/// The paths execvp(3) would try for `argv0` with this PATH.
pub fn candidates(argv0: &str, path: &str) -> Vec<String> {
    if argv0.contains('/') {
        return vec![argv0.to_string()];
    }
    path.split(':')
        .map(|dir| if dir.is_empty() { format!("./{argv0}") } else { format!("{}/{argv0}", dir.trim_end_matches('/')) })
        .collect()
}

impl CommandPlan {
    /// Errors are plain messages: the caller knows whether they are create or run errors.
    pub fn new(argv: &[String], env: &[(String, String)]) -> Result<CommandPlan, String> {
        let Some(argv0) = argv.first().filter(|a| !a.is_empty()) else {
            return Err("no command specified".into());
        };
        let c = |s: &str| CString::new(s).map_err(|_| format!("{s:?} contains a NUL byte"));
        let mut envp = Vec::with_capacity(env.len());
        for (k, v) in env {
            if k.is_empty() || k.contains('=') {
                return Err(format!("invalid environment variable name {k:?}"));
            }
            envp.push(c(&format!("{k}={v}"))?);
        }
        let path = env.iter().rev().find(|(k, _)| k == "PATH").map_or(DEFAULT_PATH, |(_, v)| v.as_str());
        Ok(CommandPlan {
            name: argv0.clone(),
            candidates: candidates(argv0, path).iter().map(|p| c(p)).collect::<Result<_, _>>()?,
            argv: CArray::new(argv.iter().map(|a| c(a)).collect::<Result<_, _>>()?),
            envp: CArray::new(envp),
        })
    }

    /// The RunContainerError message, worded like runc's.
    pub fn describe(&self, errno: Errno) -> String {
        match errno {
            Errno::ENOENT if !self.name.contains('/') => {
                format!("exec: {:?}: executable file not found in $PATH", self.name)
            }
            e => format!("exec: {:?}: {}", self.name, e.desc().to_lowercase()),
        }
    }
}

pub struct InitPlan {
    pub sock: RawFd,
    pub namespaces: Vec<(RawFd, CloneFlags)>,
    /// Set after joining the namespaces; only ever given with a UTS namespace to join.
    pub hostname: Option<Vec<u8>>,
    pub rootfs: RootfsPlan,
    /// Descriptors to install as 0, 1 and 2.
    pub stdio: [RawFd; 3],
    pub creds: Credentials,
    pub command: CommandPlan,
}

/// Tries each candidate like execvp(3): a missing file moves on, a permission problem is
/// remembered, anything else stops. Returns only on failure.
pub fn exec_command<S: Syscall>(sys: &S, cmd: &CommandPlan) -> Failure {
    let mut denied = false;
    for (i, path) in cmd.candidates.iter().enumerate() {
        match sys.execve(path, &cmd.argv, &cmd.envp) {
            Errno::ENOENT | Errno::ENOTDIR => {}
            Errno::EACCES => denied = true,
            e => return Failure::new(Stage::Exec, i, e),
        }
    }
    Failure::new(Stage::Exec, 0, if denied { Errno::EACCES } else { Errno::ENOENT })
}

pub fn set_stdio<S: Syscall>(sys: &S, stdio: &[RawFd; 3]) -> Result<(), Failure> {
    for (target, fd) in stdio.iter().enumerate() {
        sys.dup2(*fd, target as RawFd).map_err(|e| Failure::new(Stage::Stdio, target, e))?;
    }
    Ok(())
}

pub fn set_credentials<S: Syscall>(sys: &S, c: &Credentials) -> Result<(), Failure> {
    // Groups first: once the uid is dropped we may no longer change them.
    sys.setgroups(&c.groups).map_err(|e| Failure::new(Stage::Credentials, 0, e))?;
    sys.setresgid(c.gid).map_err(|e| Failure::new(Stage::Credentials, 1, e))?;
    sys.setresuid(c.uid).map_err(|e| Failure::new(Stage::Credentials, 2, e))?;
    Ok(())
}

/// Everything between the first go-ahead and the user's command.
pub fn container_init<S: Syscall>(sys: &S, plan: &InitPlan) -> Result<(), Failure> {
    for (i, (fd, ns)) in plan.namespaces.iter().enumerate() {
        sys.setns(*fd, *ns).map_err(|e| Failure::new(Stage::JoinNamespace, i, e))?;
    }
    if let Some(name) = &plan.hostname {
        sys.sethostname(name).map_err(|e| Failure::new(Stage::Hostname, 0, e))?;
    }
    // Its own session: signals to the agent's process group or terminal never reach it.
    sys.setsid().map_err(|e| Failure::new(Stage::Setsid, 0, e))?;
    setup_rootfs(sys, &plan.rootfs)?;
    set_stdio(sys, &plan.stdio)?;
    set_credentials(sys, &plan.creds)?;
    sys.umask(0o022);
    sys.cloexec_from(3).map_err(|e| Failure::new(Stage::Stdio, 3, e))?;
    Ok(())
}

/// The child's entry point. Never returns.
pub fn child_main(plan: &InitPlan) -> i32 {
    process::reset_signals();
    if !channel::child_wait_go(plan.sock, Go::Setup) {
        process::exit_now(1);
    }
    let f = match container_init(&LinuxSyscall, plan) {
        Ok(()) if channel::child_wait_go(plan.sock, Go::Exec) => exec_command(&LinuxSyscall, &plan.command),
        Ok(()) => process::exit_now(1),
        Err(f) => f,
    };
    channel::child_send_failure(plan.sock, &f);
    process::exit_now(127)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::spec::{ContainerSpec, Rootfs};
    use crate::runtime::syscall::recording::RecordingSyscall;

    fn plan(argv: &[&str], env: &[(&str, &str)]) -> CommandPlan {
        let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        CommandPlan::new(&argv, &env).unwrap()
    }

    #[test]
    fn the_path_is_searched_like_execvp() {
        let cases: [(&str, &str, &[&str]); 4] = [
            ("sh", "/usr/bin:/bin", &["/usr/bin/sh", "/bin/sh"]),
            ("sh", "/usr/bin/::/bin", &["/usr/bin/sh", "./sh", "/bin/sh"]),
            ("/bin/sh", "/usr/bin", &["/bin/sh"]),
            ("./run.sh", "/usr/bin", &["./run.sh"]),
        ];
        for (argv0, path, want) in cases {
            assert_eq!(candidates(argv0, path), want, "{argv0} in {path}");
        }
    }

    #[test]
    fn later_environment_entries_override_earlier_ones_in_place() {
        let s = |v: &[(&str, &str)]| v.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect::<Vec<_>>();
        let merged = merge_env(&s(&[("A", "1"), ("B", "2")]), &s(&[("B", "3"), ("C", "4")]));
        assert_eq!(merged, s(&[("A", "1"), ("B", "3"), ("C", "4")]));
    }

    #[test]
    fn a_missing_command_is_enoent_and_a_non_executable_one_is_eacces() {
        let p = plan(&["nosuch"], &[("PATH", "/a:/b")]);
        let sys = RecordingSyscall::default();
        assert_eq!(exec_command(&sys, &p).errno, Errno::ENOENT);
        assert_eq!(sys.calls().len(), 2);
        assert_eq!(p.describe(Errno::ENOENT), "exec: \"nosuch\": executable file not found in $PATH");
        assert_eq!(p.describe(Errno::EACCES), "exec: \"nosuch\": permission denied");
        // /a/nosuch is not executable, /b/nosuch does not exist: the permission problem wins.
        let sys = RecordingSyscall { fail: Some(("execve /a/".into(), Errno::EACCES)), ..Default::default() };
        assert_eq!(exec_command(&sys, &p).errno, Errno::EACCES);
    }

    #[test]
    fn the_first_existing_candidate_is_executed_with_argv_and_env() {
        let p = plan(&["sh", "-c", "echo $FOO"], &[("FOO", "bar"), ("PATH", "/usr/bin:/bin")]);
        let sys = RecordingSyscall { executables: vec!["/bin/sh".into()], ..Default::default() };
        let f = exec_command(&sys, &p);
        assert_eq!(f.errno, Errno::UnknownErrno, "the recorder's stand-in for a successful exec");
        assert_eq!(sys.calls().last().unwrap(), "execve /bin/sh [sh -c echo $FOO] [FOO=bar PATH=/usr/bin:/bin]");
    }

    #[test]
    fn bad_commands_are_refused_before_cloning() {
        let e = |argv: &[&str], env: &[(&str, &str)]| {
            let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
            let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            CommandPlan::new(&argv, &env).err()
        };
        assert_eq!(e(&[], &[]).as_deref(), Some("no command specified"));
        assert!(e(&["a\0b"], &[]).is_some());
        assert!(e(&["sh"], &[("A=B", "c")]).is_some());
    }

    #[test]
    fn the_child_joins_namespaces_then_names_the_host_then_sets_up_the_root_then_drops_privileges_then_execs() {
        let spec = ContainerSpec {
            rootfs: Rootfs {
                layers: vec!["/l".into()],
                upper_dir: "/u".into(),
                work_dir: "/w".into(),
                mount_point: "/r".into(),
            },
            ..Default::default()
        };
        let plan = InitPlan {
            sock: 10,
            namespaces: vec![(11, CloneFlags::CLONE_NEWNET), (12, CloneFlags::CLONE_NEWIPC)],
            hostname: Some(b"web-0".to_vec()),
            rootfs: RootfsPlan::new(&spec).unwrap(),
            stdio: [13, 14, 14],
            creds: Credentials { uid: 1000, gid: 2000, groups: vec![3000] },
            command: plan(&["true"], &[("PATH", "/bin")]),
        };
        let sys = RecordingSyscall::default();
        container_init(&sys, &plan).unwrap();
        assert_eq!(exec_command(&sys, &plan.command).errno, Errno::ENOENT);
        let calls = sys.calls();
        assert_eq!(calls[0], "setns 11 CLONE_NEWNET");
        assert_eq!(calls[1], "setns 12 CLONE_NEWIPC");
        assert_eq!(calls[2], "sethostname web-0");
        assert_eq!(calls[3], "setsid");
        let tail: Vec<&str> = calls[calls.len() - 10..].iter().map(String::as_str).collect();
        assert_eq!(
            tail,
            [
                "chdir /",
                "dup2 13 0",
                "dup2 14 1",
                "dup2 14 2",
                "setgroups [3000]",
                "setresgid 2000",
                "setresuid 1000",
                "umask 22",
                "cloexec_from 3",
                "execve /bin/true [true] [PATH=/bin]",
            ]
        );
    }
}

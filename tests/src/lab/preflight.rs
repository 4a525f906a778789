//! What the lab needs before it starts: root, and the programs it runs,
//! each named with the Debian package that provides it.

use std::path::{Path, PathBuf};

/// Every program the lab runs, and its Debian 12 package.
pub const PROGRAMS: &[(&str, &str)] = &[
    ("ip", "iproute2"),
    ("tc", "iproute2"),
    ("ss", "iproute2"),
    ("ethtool", "ethtool"),
    ("timeout", "coreutils"),
    ("kill", "procps"),
    ("python3", "python3"),
    ("curl", "curl"),
    ("openssl", "openssl"),
    ("dnsmasq", "dnsmasq-base"),
    ("dig", "bind9-dnsutils"),
    ("host", "bind9-host"),
    ("ssh", "openssh-client"),
    ("ssh-keygen", "openssh-client"),
    ("sshd", "openssh-server"),
    ("iodine", "iodine"),
    ("iodined", "iodine"),
    ("ptunnel-ng", "ptunnel-ng"),
    ("nmap", "nmap"),
];

/// The Debian packages of [`PROGRAMS`], once each, in first-use order.
#[must_use]
pub fn apt_packages() -> Vec<&'static str> {
    let mut packages: Vec<&'static str> = Vec::new();
    for (_, package) in PROGRAMS {
        if !packages.contains(package) {
            packages.push(package);
        }
    }
    packages
}

/// Folders searched after `$PATH`: sshd, iodine and dnsmasq live in
/// /usr/sbin, which a non-login shell may not have on its path.
const EXTRA_DIRS: [&str; 4] = ["/usr/sbin", "/sbin", "/usr/bin", "/bin"];

/// `$PATH` with [`EXTRA_DIRS`] appended where missing: the search path of
/// every command the lab runs, so that it finds what [`find_program`] found.
#[must_use]
pub fn search_path() -> std::ffi::OsString {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    for extra in EXTRA_DIRS {
        if !dirs.iter().any(|d| d == Path::new(extra)) {
            dirs.push(PathBuf::from(extra));
        }
    }
    std::env::join_paths(dirs).unwrap_or(path)
}

/// The full path of `program`, if it is installed. `python3` prefers the
/// distribution's /usr/bin/python3 over a version manager's shim on `$PATH`.
#[must_use]
pub fn find_program(program: &str) -> Option<PathBuf> {
    if program == "python3" && Path::new("/usr/bin/python3").is_file() {
        return Some(PathBuf::from("/usr/bin/python3"));
    }
    std::env::split_paths(&search_path()).map(|dir| dir.join(program)).find(|candidate| candidate.is_file())
}

/// True when this process runs with effective uid 0.
#[must_use]
pub fn is_root() -> bool {
    // `Uid:` real, effective, saved, filesystem.
    std::fs::read_to_string("/proc/self/status").ok().is_some_and(|status| {
        status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().nth(1).map(|euid| euid == "0"))
            .unwrap_or(false)
    })
}

/// Everything the lab needs, as test gates: root and each program.
#[must_use]
pub fn needs() -> Vec<crate::gate::Need<'static>> {
    let mut needs = vec![crate::gate::Need::Root];
    needs.extend(PROGRAMS.iter().map(|&(program, package)| crate::gate::Need::Program { program, package }));
    needs
}

/// The programs that are not installed, with their packages.
#[must_use]
pub fn missing_programs() -> Vec<(&'static str, &'static str)> {
    PROGRAMS.iter().copied().filter(|(program, _)| find_program(program).is_none()).collect()
}

/// Why the lab cannot run here (`None`: it can): not root, or programs
/// missing, named with the packages that provide them.
#[must_use]
pub fn unavailable() -> Option<String> {
    if !is_root() {
        return Some(
            "the lab needs root (it creates network namespaces and attaches XDP programs)".to_owned(),
        );
    }
    let missing = missing_programs();
    if missing.is_empty() {
        return None;
    }
    let programs: Vec<String> = missing.iter().map(|(p, pkg)| format!("{p} (package {pkg})")).collect();
    let mut packages: Vec<&str> = missing.iter().map(|(_, pkg)| *pkg).collect();
    packages.dedup();
    Some(format!(
        "the lab needs programs that are not installed: {}; install them with \
         `apt-get install {}` or `cargo xtask setup`",
        programs.join(", "),
        packages.join(" ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_each_package_once() {
        let packages = apt_packages();
        assert!(packages.contains(&"iodine") && packages.contains(&"openssh-server"));
        let mut unique = packages.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), packages.len());
    }

    #[test]
    fn finds_a_program_every_system_has() {
        assert!(find_program("sh").is_some());
        assert!(find_program("no-such-program-nbl").is_none());
    }
}

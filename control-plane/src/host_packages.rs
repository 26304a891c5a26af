//! The host packages a dev cluster needs, installed by `up` when missing.
//!
//! The demo images are built from Debian's static busybox and node agents program Service rules
//! with `nft`. Without them `up` still runs, but `demo/*` pods cannot pull and Services do not
//! route: a new user would find that out one error at a time. On a Debian-like host `up` installs
//! them once (it already runs as root); elsewhere, or offline, it says what is missing and goes on.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A package the cluster wants, and how to tell it is there.
pub struct Wanted {
    pub package: &'static str,
    pub why: &'static str,
    pub present: fn() -> bool,
}

pub const WANTED: &[Wanted] = &[
    Wanted {
        package: "busybox-static",
        why: "the demo images",
        present: static_busybox_present,
    },
    Wanted {
        package: "nftables",
        why: "Service rules on nodes",
        present: nft_present,
    },
];

/// `/bin/busybox` exists and is static: a dynamic one would not run inside an image.
pub fn static_busybox_present() -> bool {
    let bin = Path::new("/bin/busybox");
    bin.exists() && !is_dynamic(bin)
}

fn is_dynamic(bin: &Path) -> bool {
    // ELF with a PT_INTERP program header needs a loader the demo images do not have.
    std::fs::read(bin).map(|b| has_interp(&b)).unwrap_or(true)
}

/// Whether a 64-bit little-endian ELF file has a PT_INTERP header (a dynamic executable).
fn has_interp(elf: &[u8]) -> bool {
    let u16_at = |o: usize| {
        elf.get(o..o + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]) as usize)
    };
    let u32_at = |o: usize| {
        elf.get(o..o + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let u64_at = |o: usize| {
        elf.get(o..o + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])) as usize)
    };
    if elf.get(..5) != Some(b"\x7fELF\x02") {
        return false;
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38))
    else {
        return false;
    };
    (0..phnum).any(|i| u32_at(phoff + i * phentsize) == Some(3))
}

fn nft_present() -> bool {
    ["/usr/sbin/nft", "/sbin/nft", "/usr/bin/nft"]
        .iter()
        .any(|p| Path::new(p).exists())
}

/// Installs what is missing with apt-get, printing one line per step through `say`.
/// Never fails: a missing package costs a feature, not the cluster.
pub fn ensure(say: &dyn Fn(&str)) {
    let missing: Vec<&Wanted> = WANTED.iter().filter(|w| !(w.present)()).collect();
    if missing.is_empty() {
        return;
    }
    let names: Vec<&str> = missing.iter().map(|w| w.package).collect();
    let hint = format!("apt-get install {}", names.join(" "));
    if !Path::new("/usr/bin/apt-get").exists() {
        for w in &missing {
            say(&format!(
                "warning: {} is missing, so {} are not available (install it)",
                w.package, w.why
            ));
        }
        return;
    }
    say(&format!(
        "installing {} (for {})",
        names.join(", "),
        missing.iter().map(|w| w.why).collect::<Vec<_>>().join(", ")
    ));
    let t0 = Instant::now();
    // --no-remove: busybox-static replaces Debian's dynamic busybox; `up` never removes a package
    // the host has, it says what is missing instead.
    let ok = apt(&["update", "-qq"]) && apt(&[&["install", "-y", "-qq", "--no-remove"][..], &names].concat());
    let still: Vec<&Wanted> = missing.into_iter().filter(|w| !(w.present)()).collect();
    if ok && still.is_empty() {
        say(&format!("installed in {:.1} s", t0.elapsed().as_secs_f64()));
    } else {
        for w in still {
            say(&format!(
                "warning: could not install {}, so {} are not available ({hint})",
                w.package, w.why
            ));
        }
    }
}

/// Runs apt-get with a time limit so an unreachable mirror cannot hang `up`.
fn apt(args: &[&str]) -> bool {
    let child = Command::new("apt-get")
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let Ok(mut child) = child else { return false };
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return status.success(),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn elf_with_headers(types: &[u32]) -> Vec<u8> {
        let mut b = vec![0u8; 0x40 + 56 * types.len()];
        b[..5].copy_from_slice(b"\x7fELF\x02");
        b[0x20..0x28].copy_from_slice(&0x40u64.to_le_bytes());
        b[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        b[0x38..0x3a].copy_from_slice(&(types.len() as u16).to_le_bytes());
        for (i, t) in types.iter().enumerate() {
            b[0x40 + i * 56..0x40 + i * 56 + 4].copy_from_slice(&t.to_le_bytes());
        }
        b
    }

    #[test]
    fn an_elf_with_an_interpreter_header_is_dynamic() {
        assert!(has_interp(&elf_with_headers(&[6, 3, 1])));
    }

    #[test]
    fn an_elf_without_an_interpreter_header_is_static() {
        assert!(!has_interp(&elf_with_headers(&[1, 1, 4])));
    }

    #[test]
    fn truncated_or_foreign_files_are_not_taken_for_dynamic_elves() {
        assert!(!has_interp(b"#!/bin/sh\n"));
        let mut cut = elf_with_headers(&[1, 3]);
        cut.truncate(0x50);
        assert!(!has_interp(&cut));
    }

    #[test]
    fn this_host_running_the_tests_has_a_static_busybox_when_it_has_one_at_all() {
        // tests/run.sh installs busybox-static; a host with it must be recognised.
        if Path::new("/bin/busybox").exists() {
            assert!(static_busybox_present());
        }
    }
}

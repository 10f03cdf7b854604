//! What the sendmail checks ask of the machine, behind a trait, so every verdict is tested
//! with a planted Postfix, Exim or systemd instead of a real one.

use std::ffi::CString;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nix::unistd::{Group, User, getgrouplist};

/// The machine as the sendmail checks see it.
pub trait Host {
    /// What `program args` printed, when it could be run and exited 0.
    fn run(&self, program: &str, args: &[&str]) -> Option<String>;
    /// The mode bits of the file at `path` (links followed), when it exists.
    fn mode(&self, path: &Path) -> Option<u32>;
    /// The text of the file at `path`, when it can be read.
    fn read(&self, path: &Path) -> Option<String>;
    /// The names of the entries in the directory `dir`; none when it cannot be read.
    fn list(&self, dir: &Path) -> Vec<String>;
    /// Where `path` leads once every symbolic link is followed.
    fn resolve(&self, path: &Path) -> Option<PathBuf>;
    /// The names of the groups `user` is in, its primary group included.
    fn groups_of(&self, user: &str) -> Vec<String>;
}

/// This machine.
#[derive(Debug)]
pub struct System;

impl Host for System {
    fn run(&self, program: &str, args: &[&str]) -> Option<String> {
        let output = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()?;
        output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
    }

    fn mode(&self, path: &Path) -> Option<u32> {
        std::fs::metadata(path).ok().map(|m| m.mode())
    }

    fn read(&self, path: &Path) -> Option<String> {
        std::fs::read_to_string(path).ok()
    }

    fn list(&self, dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .filter_map(|e| e.file_name().into_string().ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn resolve(&self, path: &Path) -> Option<PathBuf> {
        std::fs::canonicalize(path).ok()
    }

    fn groups_of(&self, user: &str) -> Vec<String> {
        let Ok(Some(account)) = User::from_name(user) else {
            return Vec::new();
        };
        let gids = CString::new(user)
            .ok()
            .and_then(|name| getgrouplist(&name, account.gid).ok())
            .unwrap_or_else(|| vec![account.gid]);
        gids.into_iter()
            .filter_map(|gid| Group::from_gid(gid).ok().flatten())
            .map(|group| group.name)
            .collect()
    }
}

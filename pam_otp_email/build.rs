//! Link settings for the module, which libpam loads and unloads inside other programs.
//!
//! - The unwinder is linked in statically (libgcc_eh) instead of depending on libgcc_s.so.1.
//!   A C application such as sshd does not have libgcc_s loaded, so depending on it made
//!   every PAM transaction load and unload one more shared library (bench/README.md,
//!   "libgcc_s"). Unwinding stays on: panics are still caught at the entry points.
//! - The module is marked NODELETE, so an application that runs many PAM transactions in one
//!   process (a login daemon, an auth worker) maps and relocates it once instead of at every
//!   `pam_start`/`pam_end`. It holds no state between transactions.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=CC");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if os != "linux" || env != "gnu" {
        return;
    }
    match static_unwinder_dir() {
        Some(dir) => {
            println!("cargo:rustc-link-search=native={dir}");
            println!("cargo:rustc-link-lib=static:-bundle=gcc_eh");
        }
        None => println!(
            "cargo:warning=libgcc_eh.a not found; the module will load libgcc_s.so.1 at every PAM transaction"
        ),
    }
    println!("cargo:rustc-cdylib-link-arg=-Wl,-z,nodelete");
}

/// The directory of the C compiler's static unwinder, asked of the compiler that links Rust
/// on this target (`$CC`, else `cc`).
fn static_unwinder_dir() -> Option<String> {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let output = Command::new(cc)
        .arg("-print-file-name=libgcc_eh.a")
        .output()
        .ok()?;
    let path = String::from_utf8(output.stdout).ok()?;
    let path = std::path::Path::new(path.trim());
    // Without the file, the compiler echoes the bare name back.
    if !path.is_absolute() || !path.exists() {
        return None;
    }
    Some(path.parent()?.to_str()?.to_string())
}

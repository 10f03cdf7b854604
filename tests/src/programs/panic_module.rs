//! The test-only build of the module whose `test_panic` argument makes the flow panic, so the
//! tests can prove a panic never reaches the program hosting the module.
//!
//! It is built with `--features test-panic` into its own target directory (`target/panic`), so
//! the packaged module in `target/<profile>` never has the fault in it. `tests/run` builds it
//! ahead of the tests; [`path`] builds it (or finds it up to date) when a test first needs it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::paths;

static BUILT: OnceLock<PathBuf> = OnceLock::new();

/// The target directory of the panic build: `target/panic`, next to `target/debug`.
pub fn target_dir() -> PathBuf {
    paths::target_dir()
        .parent()
        .expect("the profile directory has a parent")
        .join("panic")
}

/// The panic build of `libpam_otp_email.so`, built on first use (cargo makes that a no-op when
/// it is up to date).
pub fn path() -> PathBuf {
    BUILT.get_or_init(build).clone()
}

fn build() -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the workspace");
    let target = target_dir();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .current_dir(workspace)
        .env("CARGO_TARGET_DIR", &target)
        .args([
            "build",
            "--package",
            "pam_otp_email",
            "--lib",
            "--features",
            "test-panic",
        ])
        .output()
        .expect("run cargo");
    assert!(
        output.status.success(),
        "building the test-panic module failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let module = target.join("debug/libpam_otp_email.so");
    assert!(module.exists(), "{} was not built", module.display());
    module
}

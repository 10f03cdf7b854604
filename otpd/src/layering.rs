//! The layers a request passes through, top to bottom, and the rule that keeps them a one-way
//! path: a module names only modules below it, never one above it or beside it, so dispatch is
//! never reached from below and the login handler and admin never reach each other.
//!
//! 0. `ctl` is otpctl's side: it talks to otpd over its socket (and reads `lifecycle`'s names).
//! 1. `lifecycle` starts the pieces;
//! 2. `server` (peer credentials, fair share, framing), and `relay_listener` (DMZ hosts over
//!    mutual TLS), hand each request to
//! 3. `dispatch`, which sends login requests to
//! 4. `login`, the login handler, and admin requests to `admin`; and both use
//! 5. everything else: `rules`, `delivery`, `directory`, `policy`, `store`, `mail`, `audit`...
//!
//! What both the login handler and admin need (the rules' helpers, the issue -> deliver ->
//! settle sequence, the audit vocabulary) lives in layer 5, never in one of them for the other
//! to import. Tests are exempt: they may drive the whole daemon through `dispatch::handle`. The
//! test below reads the sources and fails on a `crate::<module>` or `super::<module>` path that
//! points up or sideways.

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    /// The modules that are layers of their own, and their depth (lower is higher up).
    const UPPER: [(&str, u8); 7] = [
        ("ctl", 0),
        ("lifecycle", 1),
        ("server", 2),
        ("relay_listener", 2),
        ("dispatch", 3),
        ("login", 4),
        ("admin", 4),
    ];

    /// The depth of the everything-else layer.
    const BELOW: u8 = 5;

    /// The top-level module of the file at `path` (relative to `src/`).
    fn module_of(path: &Path) -> &str {
        let first = path
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .unwrap_or("");
        first.trim_end_matches(".rs")
    }

    /// The depth of `module`.
    fn depth_of(module: &str) -> u8 {
        UPPER
            .iter()
            .find(|(name, _)| *name == module)
            .map_or(BELOW, |(_, depth)| *depth)
    }

    fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                sources(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    /// The non-test part of a source file: everything before its test module.
    fn non_test(text: &str) -> &str {
        text.split("#[cfg(test)]").next().unwrap_or(text)
    }

    /// The paths in `code`, the source of a file in `module`, that name an upper module above
    /// it or beside it (another module of its depth): `(line, module named)`. Its own module
    /// and those below it are fine.
    fn upward_paths(code: &str, module: &str) -> Vec<(usize, &'static str)> {
        let depth = depth_of(module);
        let mut found = Vec::new();
        for (n, line) in code.lines().enumerate() {
            if line.trim_start().starts_with("//") {
                continue;
            }
            for (name, upper) in UPPER {
                if upper > depth || name == module {
                    continue;
                }
                let named = ["crate::", "super::"].iter().any(|prefix| {
                    line.match_indices(&format!("{prefix}{name}"))
                        .any(|(at, m)| {
                            !line[at + m.len()..]
                                .starts_with(|c: char| c.is_alphanumeric() || c == '_')
                        })
                });
                if named {
                    found.push((n + 1, name));
                }
            }
        }
        found
    }

    #[test]
    fn no_module_imports_back_up_the_request_path() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        sources(&src, &mut files);
        assert!(files.len() > 50, "found only {} sources", files.len());
        let mut upward = Vec::new();
        for file in &files {
            let relative = file.strip_prefix(&src).unwrap();
            if relative.starts_with("bin") || relative == Path::new("main.rs") {
                continue;
            }
            let text = std::fs::read_to_string(file).unwrap();
            for (line, name) in upward_paths(non_test(&text), module_of(relative)) {
                upward.push(format!("{}:{line} names {name}", relative.display()));
            }
        }
        assert!(upward.is_empty(), "paths pointing up: {upward:#?}");
    }

    #[test]
    fn the_check_sees_an_import_from_the_dispatcher() {
        let code = "use crate::dispatch::handle;\nuse crate::store::Store;\n";
        assert_eq!(upward_paths(code, "admin"), vec![(1, "dispatch")]);
        assert_eq!(upward_paths(code, "login"), vec![(1, "dispatch")]);
        assert_eq!(
            upward_paths("crate::admin::SERVICE", "store"),
            vec![(1, "admin")]
        );
        assert!(upward_paths("use crate::dispatch_like::X;", "store").is_empty());
        assert!(upward_paths("use crate::admin::authz;", "server").is_empty());
        assert!(upward_paths("crate::login::begin(", "dispatch").is_empty());
        assert!(upward_paths("use crate::lifecycle::DATABASE_FILE;", "ctl").is_empty());
    }

    #[test]
    fn the_check_sees_the_login_handler_and_admin_reach_each_other() {
        assert_eq!(
            upward_paths("use crate::admin::record;", "login"),
            vec![(1, "admin")]
        );
        assert_eq!(
            upward_paths("crate::login::Mode::Resend", "admin"),
            vec![(1, "login")]
        );
        assert!(upward_paths("use crate::login::Mode;", "login").is_empty());
        assert_eq!(
            upward_paths("crate::ctl::run()", "daemon"),
            vec![(1, "ctl")]
        );
    }
}

//! The layers a request passes through, top to bottom, and the rule that keeps them a one-way
//! path: a module names only modules below it, so dispatch is never reached from below.
//!
//! 1. `lifecycle` starts the pieces; `ctl` is otpctl's side and talks to otpd over its socket.
//! 2. `server` (peer credentials, fair share, framing) hands each request to
//! 3. `handler`, the dispatcher and login handler, which sends admin requests to
//! 4. `admin`; and both use
//! 5. everything else: `rules`, `delivery`, `directory`, `policy`, `store`, `mail`, `audit`...
//!
//! What both the login handler and admin need (the rules' helpers, the issue -> deliver ->
//! settle sequence) lives in layer 5, never in one of them for the other to import. Tests are
//! exempt: they may drive the whole daemon through `handler::handle`. The test below reads the
//! sources and fails on a `crate::<upper>` or `super::<upper>` path that points up.

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    /// The modules that are layers of their own, and their depth (lower is higher up).
    const UPPER: [(&str, u8); 5] = [
        ("lifecycle", 1),
        ("ctl", 1),
        ("server", 2),
        ("handler", 3),
        ("admin", 4),
    ];

    /// The depth of the file at `path` (relative to `src/`).
    fn depth_of(path: &Path) -> u8 {
        let first = path
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .unwrap_or("");
        let module = first.trim_end_matches(".rs");
        UPPER
            .iter()
            .find(|(name, _)| *name == module)
            .map_or(5, |(_, depth)| *depth)
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

    /// Every path in `code` that names an upper module deeper than or level with `depth` is
    /// fine; this lists those that point up: `(line, module)`.
    fn upward_paths(code: &str, depth: u8) -> Vec<(usize, &'static str)> {
        let mut found = Vec::new();
        for (n, line) in code.lines().enumerate() {
            if line.trim_start().starts_with("//") {
                continue;
            }
            for (name, upper) in UPPER {
                if upper >= depth {
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
            for (line, name) in upward_paths(non_test(&text), depth_of(relative)) {
                upward.push(format!("{}:{line} names {name}", relative.display()));
            }
        }
        assert!(upward.is_empty(), "paths pointing up: {upward:#?}");
    }

    #[test]
    fn the_check_sees_an_import_from_the_dispatcher() {
        let code = "use crate::handler::{bounded, limits_of};\nuse crate::store::Store;\n";
        assert_eq!(upward_paths(code, 4), vec![(1, "handler")]);
        assert_eq!(upward_paths("crate::admin::SERVICE", 5), vec![(1, "admin")]);
        assert!(upward_paths("use crate::handler_like::X;", 5).is_empty());
        assert!(upward_paths("use crate::admin::authz;", 2).is_empty());
    }
}

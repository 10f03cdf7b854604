//! The docs agree with what runs: the configuration shown in the README is a real, valid
//! config; the module's PAM line and the sshd root block are the same in every document and in
//! the end-to-end tests.

// Test code: a failed unwrap is how a test reports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use common::config::Config;

fn toml_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match (&mut current, line.trim_start()) {
            (None, "```toml") => current = Some(String::new()),
            (Some(block), "```") => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            (Some(block), _) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

#[test]
fn the_readme_example_config_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    let readme = std::fs::read_to_string(&path).expect("README.md");
    let blocks = toml_blocks(&readme);
    assert!(!blocks.is_empty(), "the README shows no toml example");
    for block in blocks {
        if let Err(e) = Config::parse(&block, &path) {
            panic!("README example does not parse: {e}");
        }
    }
}

/// A file of the repository.
fn repo_file(path: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The lines of `path`'s examples: fenced and indented blocks in Markdown, `.nf` blocks in a man
/// page, every line of a config file; whitespace squeezed, man escapes undone.
fn example_lines(path: &str) -> Vec<String> {
    let text = repo_file(path);
    let squeeze = |l: &str| l.split_whitespace().collect::<Vec<_>>().join(" ");
    let (open, close) = if path.ends_with(".md") {
        (Some("```"), "```")
    } else if path.ends_with(".8") {
        (Some(".nf"), ".fi")
    } else {
        (None, "")
    };
    let mut inside = open.is_none();
    let mut lines = Vec::new();
    for line in text.lines() {
        let trimmed = line.trim();
        match open {
            Some(open) if !inside && trimmed.starts_with(open) => inside = true,
            Some(_) if inside && trimmed == close => inside = false,
            _ if inside => lines.push(squeeze(&line.replace("\\-", "-"))),
            // Markdown's indented code blocks.
            Some("```") if line.starts_with("    ") => lines.push(squeeze(line)),
            _ => {}
        }
    }
    lines
}

#[test]
fn every_document_gives_the_module_the_same_control_outside_the_single_secret_stack() {
    // The single-secret stack (`split`, the password module with use_first_pass, the module) is
    // the one place the docs use `required`; everywhere else the line is pam-auth-update's.
    let expected = "[success=ok ignore=ignore default=die] pam_otp_email.so";
    for path in [
        "README.md",
        "packaging/doc/README.md",
        "packaging/man/pam_otp_email.8",
        "packaging/doc/examples/pam.d/sshd",
        "packaging/doc/examples/pam.d/sshd.rpm",
        "packaging/pam-configs/otp-email",
    ] {
        let lines = example_lines(path);
        let mut checked = 0;
        for (i, line) in lines.iter().enumerate() {
            let line = line.trim_start_matches('#');
            let after_password = i > 0 && lines[i - 1].contains("use_first_pass");
            // A pam.d line, or the profile's (which has no `auth`).
            let stack_line = line.starts_with("auth ") || line.starts_with('[');
            if !stack_line
                || !line.contains("pam_otp_email.so")
                || line.contains(" split")
                || after_password
            {
                continue;
            }
            assert!(line.contains(expected), "{path}: {line:?}");
            checked += 1;
        }
        assert!(checked > 0, "{path} shows no line of the module");
    }
}

#[test]
fn the_root_match_block_of_the_tests_is_the_one_the_drop_in_ships_and_the_docs_show() {
    let block: Vec<String> = e2e_tests::programs::sshd::ROOT_KEY_AND_CODE
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    for path in [
        "packaging/doc/examples/sshd_config.d/otp-email.conf",
        "README.md",
        "packaging/man/pam_otp_email.8",
    ] {
        let lines = example_lines(path);
        let shown = lines.windows(block.len()).any(|w| w == block.as_slice());
        assert!(shown, "{path} does not show {block:?}");
    }
    let drop_in = example_lines("packaging/doc/examples/sshd_config.d/otp-email.conf");
    let last: Vec<&String> = drop_in.iter().filter(|l| !l.is_empty()).collect();
    assert_eq!(
        last[last.len() - block.len()..],
        block.iter().collect::<Vec<_>>(),
        "the Match block ends the drop-in"
    );
}

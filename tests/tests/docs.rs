//! The configuration shown in the README is a real, valid config.

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

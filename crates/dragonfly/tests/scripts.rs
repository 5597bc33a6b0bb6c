//! Dragonfly only lets a script touch the keys it declares: every Lua script of the crate must
//! reach keys through `KEYS[...]` only. A textual check of src/lua/*.lua: every `redis.call` /
//! `redis.pcall` names its command as a string literal, the command is not one that finds keys
//! by itself (KEYS, SCAN, ...), and its first argument — the key of every command used here — is
//! a `KEYS[...]` expression. (It does not parse Lua: multi-key commands such as DEL k1 k2 would
//! need a closer look, and none is used.)

use std::path::PathBuf;

const FORBIDDEN: &[&str] = &["KEYS", "SCAN", "RANDOMKEY", "FLUSHALL", "FLUSHDB", "SELECT", "EVAL", "EVALSHA", "MOVE"];

fn scripts() -> Vec<(String, String)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/lua");
    let mut out: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "lua"))
        .map(|p| {
            (p.file_name().expect("name").to_string_lossy().into_owned(), std::fs::read_to_string(&p).expect("read"))
        })
        .collect();
    out.sort();
    out
}

/// The code of a script without its `--` comments.
fn code(source: &str) -> String {
    source.lines().map(|l| l.split("--").next().unwrap_or("")).collect::<Vec<_>>().join("\n")
}

/// Each call: (command, the text of its first argument).
fn calls(code: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(at) = ["redis.call(", "redis.pcall("].iter().filter_map(|p| rest.find(p).map(|i| (i, p.len()))).min()
    {
        let after = rest[at.0 + at.1..].trim_start();
        let quote = after.chars().next().expect("a command");
        assert!(
            quote == '\'' || quote == '"',
            "the command must be a string literal: {}",
            &after[..after.len().min(40)]
        );
        let end = after[1..].find(quote).expect("closing quote") + 1;
        let command = after[1..end].to_ascii_uppercase();
        let args = after[end + 1..].trim_start();
        let first = match args.strip_prefix(',') {
            Some(a) => a.trim_start().chars().take_while(|&c| c != ',' && c != ')').collect::<String>(),
            None => String::new(),
        };
        out.push((command, first.trim().to_string()));
        rest = &rest[at.0 + at.1..];
    }
    out
}

#[test]
fn every_script_reaches_keys_only_through_keys() {
    let scripts = scripts();
    let names: Vec<&str> = scripts.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["budget_book.lua", "budget_release.lua", "budget_renew.lua", "caps_commit.lua"]);
    for (name, source) in &scripts {
        let code = code(source);
        let calls = calls(&code);
        assert!(!calls.is_empty(), "{name} calls nothing");
        for (command, key) in &calls {
            assert!(!FORBIDDEN.contains(&command.as_str()), "{name}: {command} is not allowed in a script");
            assert!(
                key.starts_with("KEYS[") && key.ends_with(']'),
                "{name}: {command}'s key `{key}` is not a KEYS[...] expression"
            );
        }
        let upper = code.to_ascii_uppercase();
        for word in ["'KEYS'", "\"KEYS\"", "'SCAN'", "\"SCAN\""] {
            assert!(!upper.contains(word), "{name} mentions {word}");
        }
    }
}

#[test]
fn the_check_catches_keys_built_in_a_script() {
    let bad = code("local k = ARGV[1] .. ':x'\nredis.call('HGET', k, 'f') -- built\nredis.call('SCAN', '0')");
    let found = calls(&bad);
    assert_eq!(found, vec![("HGET".to_string(), "k".to_string()), ("SCAN".to_string(), "'0'".to_string())]);
    assert_eq!(
        calls("redis.pcall(\"hincrby\", KEYS[2], 'f', 1)"),
        vec![("HINCRBY".to_string(), "KEYS[2]".to_string())]
    );
}

//! bottle_exec_claude: claude must receive exactly the argv given, as node,
//! and its exit status must come back.

mod common;

use ::bottle::ffi::status::bottle_status::*;
use common::{assert_fails, tricky, Bottle, Machine};

fn bytes(args: &[&str]) -> Vec<Vec<u8>> {
    args.iter().map(|a| a.as_bytes().to_vec()).collect()
}

#[test]
fn claude_receives_exactly_its_argv() {
    let m = Machine::new("argv");
    let b = m.open();
    assert_eq!(b.exec_claude(tricky(), false).unwrap(), 0);
    assert_eq!(b.claude_argv(), bytes(tricky()));
    // One argument at a time too, so a quoting slip cannot hide between
    // neighbours.
    for arg in tricky() {
        assert_eq!(b.exec_claude(&[arg], false).unwrap(), 0);
        assert_eq!(b.claude_argv(), bytes(&[arg]), "{arg:?}");
    }
    assert_eq!(b.exec_claude(&[], false).unwrap(), 0);
    assert_eq!(b.claude_argv(), Vec::<Vec<u8>>::new());
}

#[test]
fn claude_runs_as_node_without_a_terminal_when_tty_is_false() {
    let m = Machine::new("who");
    let b = m.open();
    b.exec_claude(&["-p", "hello"], false).unwrap();
    let run = b.sh("cat ~/.claude-standin/run");
    assert_eq!(
        run.lines().collect::<Vec<_>>(),
        ["node", "/home/node", "notty"]
    );
}

#[test]
fn tty_true_still_passes_argv_exactly() {
    let m = Machine::new("tty");
    let b = m.open();
    assert_eq!(b.exec_claude(&["a b", "'"], true).unwrap(), 0);
    assert_eq!(b.claude_argv(), bytes(&["a b", "'"]));
}

#[test]
fn prompt_path_is_passed_first_and_quoted() {
    let m = Machine::new("prompt");
    let b = Bottle::open(&m.name, Some("/home/node/my prompt's.md")).unwrap();
    b.exec_claude(&["--resume", "x"], false).unwrap();
    assert_eq!(
        b.claude_argv(),
        bytes(&[
            "--append-system-prompt-file",
            "/home/node/my prompt's.md",
            "--resume",
            "x"
        ])
    );
}

#[test]
fn claudes_exit_status_is_returned() {
    let m = Machine::new("exit");
    let b = m.open();
    for code in [0, 1, 3, 255] {
        b.exec(&format!("echo {code} > /tmp/claude-exit"), Some("root"))
            .unwrap();
        assert_eq!(b.exec_claude(&["x"], false).unwrap(), code);
    }
}

#[test]
fn unknown_or_stopped_machine_fails_before_claude_starts() {
    let _ = common::standin();
    let b = Bottle::open("no-such-machine-claude", None).unwrap();
    // smolvm says `vm not found: N` or, from `status --json`,
    // `machine 'N' not found`.
    assert_fails(b.exec_claude(&["x"], false), BOTTLE_ERR_SMOLVM, "not found");

    let m = Machine::new("stopped");
    let b = m.open();
    m.stop();
    assert_fails(
        b.exec_claude(&["x"], false),
        BOTTLE_ERR_SMOLVM,
        "is not running",
    );
    m.start();
    let ran = b.exec("test -e ~/.claude-standin/argv", None).unwrap();
    assert_eq!(ran.exit_code, 1, "claude must not have run");
}

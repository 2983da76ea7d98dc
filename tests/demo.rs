//! The demo a newcomer runs keeps working: against a running orderd it
//! creates its orders, plays dispatch, and every order ends; and the
//! script around it ends when nobody is there unless asked to keep running.

use std::process::Command;

#[tokio::test]
async fn the_demo_runs_every_order_to_its_end() {
    let t = testkit::spawn_app().await;
    let nats_url = t.servers.nats_url.clone();
    let tenant = t.tenant.to_string();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_orderd-demo"))
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("ORDERD_NATS_URL", nats_url)
            .args(["--tenant", &tenant])
            .output()
            .expect("the demo runs")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("done: every order ended"), "{stdout}");
    assert!(
        stdout.contains(&format!("orderd watch --tenant {}", t.tenant)),
        "the demo ends by showing how to watch its tenant:\n{stdout}"
    );
    for expected in [
        "CLOSED (CANCELLED)",
        "ON_HOLD",
        "failed (TECHNICIAN_ILL)",
        "dispatch: resume job 1",
        "dispatch: read the drop address by id (2 fields",
        "work order 2 alone (operator)",
        "dispatch: cancel job 2",
    ] {
        assert!(stdout.contains(expected), "missing {expected:?}:\n{stdout}");
    }
    assert_eq!(stdout.matches("CLOSED (COMPLETED)").count(), 9, "{stdout}");
}

/// The end of `./scripts/demo` (its `demo_finish`), run as the script runs
/// it, with a stand-in for the servers it started.
fn demo_finish(keep: &str) -> std::process::Child {
    let script = format!(
        ". scripts/lib.sh; sleep 600 & child=$!; trap 'kill $child; exit 143' TERM; \
         demo_finish {keep} http://127.0.0.1:1/dashboard; kill $child"
    );
    Command::new("bash")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["-c", &script])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("bash runs")
}

#[test]
fn the_demo_script_stops_when_nobody_is_there_and_keeps_running_when_asked() {
    // Not in a terminal and not asked to keep: it ends at once, saying how.
    let ended = demo_finish("0").wait_with_output().expect("it ends");
    let said = String::from_utf8_lossy(&ended.stdout);
    assert!(ended.status.success(), "{said}");
    assert!(said.contains("./scripts/demo --keep"), "{said}");
    assert!(said.contains("ORDERD_DEMO_KEEP=1"), "{said}");

    // --keep, not in a terminal: it stays up until SIGTERM.
    let mut kept = demo_finish("1");
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert!(
        kept.try_wait().expect("its status").is_none(),
        "with --keep it keeps running without a terminal"
    );
    let pid = kept.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status();
    assert!(killed.expect("kill runs").success());
    let output = kept.wait_with_output().expect("it stops on SIGTERM");
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(
        said.contains("Ctrl-C (or SIGTERM) stops everything"),
        "{said}"
    );
}

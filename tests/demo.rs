//! The demo a newcomer runs keeps working: against a running orderd it
//! creates its orders, plays dispatch, and every order ends.

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

//! The operator's command line, driven as an operator would: the built
//! `orderd` binary, with `ORDERD_NATS_URL` and `ORDERD_TENANT` set, against
//! a running orderd on real servers. It must say what it did, exit with the
//! documented code, print the stable error code of a refusal, and its
//! `watch` must print every change once, in order, even when it begins in
//! the middle of a burst.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_nats::HeaderMap;
use orderd::headers;
use orderd::subjects::{self, Verb};
use orderd_core::OrderId;
use serde_json::{json, Value};
use testkit::{create_body, spawn_app, App, TestApp, WAIT};
use tokio::io::{AsyncBufReadExt, BufReader};

/// What one run of the binary did.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    /// The idempotency key it printed.
    fn key(&self) -> String {
        self.stderr
            .lines()
            .find_map(|l| l.strip_prefix("idempotency key: "))
            .unwrap_or_else(|| panic!("no idempotency key printed: {self:?}"))
            .to_owned()
    }

    fn json(&self) -> Value {
        serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|e| panic!("--json output does not parse ({e}): {self:?}"))
    }

    fn ok(self) -> Self {
        assert_eq!(self.code, 0, "{self:?}");
        self
    }
}

fn binary(t: &TestApp) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_orderd"));
    cmd.env("ORDERD_NATS_URL", &t.servers.nats_url)
        .env("ORDERD_TENANT", t.tenant.as_str())
        .env_remove("ORDERD_CONFIG")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    cmd
}

/// Runs `orderd <args>` to its end.
async fn orderd(t: &TestApp, args: &[&str]) -> Run {
    let out = tokio::time::timeout(WAIT, binary(t).args(args).output())
        .await
        .unwrap_or_else(|_| panic!("orderd {args:?} did not end in time"))
        .expect("the binary runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Writes a JSON file into the test's directory.
fn file(t: &TestApp, name: &str, body: &Value) -> String {
    let path = t.servers.dir().join(name);
    std::fs::write(&path, serde_json::to_vec_pretty(body).unwrap()).expect("write a file");
    path.display().to_string()
}

/// Creates an order from a file, as an operator would; its id.
async fn create(t: &TestApp, body: &Value) -> OrderId {
    let path = file(t, &format!("{}.json", uuid::Uuid::new_v4()), body);
    let run = orderd(t, &["create", &path, "--json"]).await.ok();
    let outcome = run.json();
    assert_eq!(outcome["ok"], json!(true), "{run:?}");
    OrderId::parse(outcome["orderId"].as_str().expect("an order id")).expect("a uuid")
}

#[tokio::test]
async fn help_version_usage_and_an_unreachable_server() {
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_orderd"))
            .args(args)
            .env_remove("ORDERD_TENANT")
            .env_remove("ORDERD_NATS_URL")
            .output()
            .expect("the binary runs")
    };
    let help = run(&["--help"]);
    assert_eq!(help.status.code(), Some(0));
    let text = String::from_utf8_lossy(&help.stdout);
    for word in ["serve", "watch", "hold", "Exit codes", "4  unavailable"] {
        assert!(text.contains(word), "--help lacks {word:?}:\n{text}");
    }
    assert_eq!(run(&["hold", "--help"]).status.code(), Some(0));
    let version = run(&["--version"]);
    assert_eq!(version.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("orderd "));
    let bash = run(&["completions", "bash"]);
    assert_eq!(bash.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&bash.stdout).contains("orderd"));

    // Usage errors: a bad order id, no tenant, an unknown option.
    let order = "67e55044-10b1-426f-9247-bb680e5fe0c8";
    assert_eq!(
        run(&["get", "nope", "--tenant", "acme"]).status.code(),
        Some(2)
    );
    assert_eq!(run(&["get", order]).status.code(), Some(2));
    // Filters narrow a tenant's watch, not one order's.
    let watch = run(&["watch", order, "--state", "on-hold", "--tenant", "acme"]);
    assert_eq!(watch.status.code(), Some(2), "{watch:?}");
    let help = run(&["watch", "--help"]);
    let text = String::from_utf8_lossy(&help.stdout);
    for word in ["--attr", "--state", "last line"] {
        assert!(text.contains(word), "watch --help lacks {word:?}:\n{text}");
    }
    assert_eq!(run(&["--bogus"]).status.code(), Some(2));

    // Nothing listens: unavailable.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let url = format!("nats://127.0.0.1:{port}");
    let down = run(&[
        "get",
        order,
        "--tenant",
        "acme",
        "--nats-url",
        &url,
        "--timeout",
        "2s",
    ]);
    assert_eq!(down.status.code(), Some(4), "{down:?}");
}

#[tokio::test]
async fn an_operator_creates_reads_holds_resumes_and_is_refused() {
    let t = spawn_app().await;
    let body = create_body("SEQUENTIAL", &["PICKUP", "DELIVERY"]);
    let order = create(&t, &body).await;
    let id = order.to_string();

    // get: as text, and as JSON.
    let got = orderd(&t, &["get", &id]).await.ok();
    assert!(got.stdout.contains(&id), "{got:?}");
    assert!(got.stdout.contains("IN_PROGRESS"), "{got:?}");
    assert!(got.stdout.contains("PICKUP"), "{got:?}");
    let view = orderd(&t, &["get", &id, "--json"]).await.ok().json();
    assert_eq!(view["orderId"], json!(id));
    assert_eq!(view["clientOrderId"], body["clientOrderId"]);
    assert_eq!(view["seq"], json!(1));

    // hold, then resume: each prints its idempotency key and exits 0.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let hold = orderd(&t, &["hold", &id, "--reason", "customer asked"])
        .await
        .ok();
    assert!(!hold.key().is_empty());
    assert!(hold.stdout.contains("ON_HOLD"), "{hold:?}");
    tokio::time::sleep(Duration::from_millis(20)).await;
    let resume = orderd(&t, &["resume", &id, "--json"]).await.ok();
    assert_ne!(resume.key(), hold.key());
    let outcome = resume.json();
    assert_eq!(outcome["ok"], json!(true));
    assert_eq!(outcome["state"], json!("IN_PROGRESS"));
    assert_eq!(outcome["seq"], json!(3));

    // A refused command: non-zero, and the stable code on stderr.
    let refused = orderd(&t, &["resume", &id]).await;
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(
        refused.stderr.contains("ORD-409-NOT_ON_HOLD"),
        "{refused:?}"
    );
    // With --json the refusal is printed as orderd sent it, too.
    let refused = orderd(&t, &["resume", &id, "--json"]).await;
    assert_eq!(refused.code, 1, "{refused:?}");
    assert_eq!(
        refused.json()["error"]["code"],
        json!("ORD-409-NOT_ON_HOLD")
    );

    // The same idempotency key twice: applied once.
    let key = format!("op-hold-{}", uuid::Uuid::new_v4());
    let first = orderd(&t, &["hold", &id, "--idempotency-key", &key])
        .await
        .ok();
    assert_eq!(first.key(), key);
    let again = orderd(&t, &["hold", &id, "--idempotency-key", &key, "--json"])
        .await
        .ok();
    let again = again.json();
    assert_eq!(again["ok"], json!(true));
    assert_eq!(again["duplicate"], json!(true));
    assert_eq!(again["seq"], json!(4));
    let history = t.history(order).await;
    let seqs: Vec<u64> = history.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [1, 2, 3, 4], "the second hold changed nothing");
    assert_eq!(history.iter().filter(|e| e.command_id == key).count(), 1);

    // history, explain and query read what happened.
    let listed = orderd(&t, &["history", &id]).await.ok();
    assert_eq!(listed.stdout.lines().count(), 1 + 4, "{listed:?}");
    assert!(listed.stdout.contains("hold") && listed.stdout.contains("resume"));
    let page = orderd(&t, &["history", &id, "--json"]).await.ok().json();
    assert_eq!(page["events"].as_array().map(Vec::len), Some(4));
    let explained = orderd(&t, &["explain", &id]).await.ok();
    assert!(explained.stdout.contains("resume"), "{explained:?}");
    let explained = orderd(&t, &["explain", &id, "--json"]).await.ok().json();
    assert_eq!(explained["state"], json!("ON_HOLD"));
    let client_order = body["clientOrderId"].as_str().unwrap();
    let found = orderd(&t, &["query", "--client-order-id", client_order, "--json"])
        .await
        .ok()
        .json();
    assert_eq!(found["orders"][0]["orderId"], json!(id));
    let found = orderd(&t, &["query", "--state", "on_hold"]).await.ok();
    assert!(found.stdout.contains(&id), "{found:?}");

    // get --as-of: between the hold and the resume, the order was held.
    let held_at = history[1].at.clone();
    assert!(history[1].at < history[2].at, "{history:?}");
    let then = orderd(&t, &["get", &id, "--as-of", &held_at, "--json"])
        .await
        .ok()
        .json();
    assert_eq!(then["state"], json!("ON_HOLD"));
    assert_eq!(then["seq"], json!(2));
    assert_eq!(then["heldFrom"], json!("IN_PROGRESS"));
    let text = orderd(&t, &["get", &id, "--as-of", &held_at]).await.ok();
    assert!(text.stdout.contains("ON_HOLD"), "{text:?}");
    let created_at = &history[0].at;
    let first = orderd(&t, &["get", &id, "--as-of", created_at, "--json"])
        .await
        .ok()
        .json();
    assert_eq!(first["state"], json!("IN_PROGRESS"));
    assert_eq!(first["seq"], json!(1));
    let before = orderd(&t, &["get", &id, "--as-of", "2000-01-01T00:00:00Z"]).await;
    assert_eq!(before.code, 3, "{before:?}");

    // Not found, and another tenant's order is not found either.
    let unknown = uuid::Uuid::new_v4().to_string();
    let missing = orderd(&t, &["get", &unknown]).await;
    assert_eq!(missing.code, 3, "{missing:?}");
    assert!(
        missing.stderr.contains("ORD-404-ORDER_NOT_FOUND"),
        "{missing:?}"
    );
    let elsewhere = orderd(&t, &["get", &id, "--tenant", "someone-else"]).await;
    assert_eq!(elsewhere.code, 3, "{elsewhere:?}");

    // cancel and close go through the same path.
    let cancel = orderd(&t, &["cancel", &id, "--reason", "no longer wanted"])
        .await
        .ok();
    assert!(!cancel.key().is_empty());
    let close = orderd(&t, &["close", &id]).await;
    assert_ne!(close.code, 0, "{close:?}");
    assert!(close.stderr.contains("ORD-"), "{close:?}");
}

#[tokio::test]
async fn an_operator_acting_on_a_stale_view_is_refused_and_changes_nothing() {
    let t = spawn_app().await;
    let order = create(&t, &create_body("SEQUENTIAL", &["PICKUP"])).await;
    let id = order.to_string();

    // The sequence `get` shows: the hold is decided as usual.
    let held = orderd(&t, &["hold", &id, "--expected-seq", "1", "--json"])
        .await
        .ok()
        .json();
    assert_eq!(
        (held["state"].clone(), held["seq"].clone()),
        (json!("ON_HOLD"), json!(2))
    );

    // Every verb naming the sequence from before the hold: refused with
    // both sequences said, and the order stays where it is.
    for verb in ["resume", "cancel", "close"] {
        let stale = orderd(&t, &[verb, &id, "--expected-seq", "1"]).await;
        assert_eq!(stale.code, 1, "{stale:?}");
        assert!(
            stale.stderr.contains("ORD-409-SEQ_MISMATCH")
                && stale.stderr.contains("sequence 2, not the expected 1"),
            "{stale:?}"
        );
    }
    let view = orderd(&t, &["get", &id, "--json"]).await.ok().json();
    assert_eq!(
        (view["state"].clone(), view["seq"].clone()),
        (json!("ON_HOLD"), json!(2))
    );

    // The current sequence again: resumed.
    let resumed = orderd(&t, &["resume", &id, "--expected-seq", "2", "--json"])
        .await
        .ok()
        .json();
    assert_eq!(resumed["state"], json!("IN_PROGRESS"));
}

#[tokio::test]
async fn an_operator_publishes_a_configuration_and_queries_by_it() {
    let t = spawn_app().await;
    let got = orderd(&t, &["config", "get", "--json"]).await.ok().json();
    assert_eq!(got["version"], json!(1));

    let draft = json!({
        "attributes": [{"name": "region", "dataType": "string", "indexed": true}],
    });
    let path = file(&t, "draft.json", &draft);
    let valid = orderd(&t, &["config", "validate", &path]).await.ok();
    assert!(valid.stdout.contains("version 2"), "{valid:?}");
    let tried = orderd(&t, &["config", "dry-run", &path, "--json"])
        .await
        .ok()
        .json();
    assert_eq!(tried["differences"], json!([]));
    let published = orderd(&t, &["config", "publish", &path, "--expected-version", "1"])
        .await
        .ok();
    assert!(published.stdout.contains("version 2"), "{published:?}");
    // Queries on the new index wait for its backfill (ORD-503-INDEX_BUILDING).
    let deadline = tokio::time::Instant::now() + WAIT;
    while orderd(&t, &["config", "get", "--json"]).await.ok().json()["indexing"] != json!([]) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the index was built"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // What `config get --json` prints is a file publish can read back.
    let current = orderd(&t, &["config", "get", "--json"]).await.ok();
    assert_eq!(current.json()["version"], json!(2));
    let again = file(&t, "current.json", &current.json());
    let conflict = orderd(
        &t,
        &["config", "publish", &again, "--expected-version", "1"],
    )
    .await;
    assert_eq!(conflict.code, 1, "{conflict:?}");
    assert!(conflict.stderr.contains("ORD-409-CONFIG_VERSION_CONFLICT"));

    let invalid = file(
        &t,
        "invalid.json",
        &json!({"attributes": [{"name": "not valid!", "dataType": "string"}]}),
    );
    let refused = orderd(&t, &["config", "validate", &invalid]).await;
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(
        refused.stderr.contains("ORD-422-INVALID_CONFIG"),
        "{refused:?}"
    );
    let unreadable = file(&t, "unreadable.json", &json!([1, 2]));
    assert_eq!(
        orderd(&t, &["config", "validate", &unreadable]).await.code,
        2
    );

    let mut north = create_body("SEQUENTIAL", &["PICKUP"]);
    north["customAttributes"] = json!({"region": "north"});
    let order = create(&t, &north).await;
    let mut south = create_body("SEQUENTIAL", &["PICKUP"]);
    south["customAttributes"] = json!({"region": "south"});
    create(&t, &south).await;
    let found = orderd(&t, &["query", "--attr", "region=north", "--json"])
        .await
        .ok()
        .json();
    let ids: Vec<&str> = found["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["orderId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [order.to_string()]);
    let refused = orderd(&t, &["query", "--attr", "colour=red"]).await;
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(refused.stderr.contains("ORD-400-ATTRIBUTE_NOT_INDEXED"));
}

#[tokio::test]
async fn a_command_that_timed_out_is_retried_safely_with_its_key() {
    let mut t = spawn_app().await;
    let order = create(&t, &create_body("SEQUENTIAL", &["PICKUP"])).await;
    let id = order.to_string();

    // orderd is down: the command is stored, but no outcome comes.
    t.stop_app().await;
    let lost = orderd(&t, &["hold", &id, "--timeout", "1s"]).await;
    assert_eq!(lost.code, 4, "{lost:?}");
    let key = lost.key();
    assert!(
        lost.stderr.contains(&format!("--idempotency-key {key}")),
        "{lost:?}"
    );

    // orderd is back and applies it; the retry with the printed key learns
    // so from the outcome endpoint and changes nothing.
    t.app = Some(App::start(t.servers.settings(), &t.nats).await);
    let retry = orderd(&t, &["hold", &id, "--idempotency-key", &key, "--json"])
        .await
        .ok();
    let outcome = retry.json();
    assert_eq!(outcome["ok"], json!(true), "{retry:?}");
    assert_eq!(outcome["duplicate"], json!(true));
    assert_eq!(outcome["state"], json!("ON_HOLD"));
    let history = t.history(order).await;
    assert_eq!(history.iter().filter(|e| e.command == "hold").count(), 1);

    // A key the stream holds and the order refused: the same refusal
    // again (exit 1, its code), and nothing changes.
    let refused = orderd(&t, &["hold", &id]).await;
    assert_eq!(refused.code, 1, "{refused:?}");
    let code = refused
        .stderr
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        .find(|w| w.starts_with("ORD-"))
        .expect("the refusal's code")
        .to_owned();
    let again = orderd(
        &t,
        &[
            "hold",
            &id,
            "--idempotency-key",
            &refused.key(),
            "--timeout",
            "1s",
        ],
    )
    .await;
    assert_eq!(again.code, 1, "{again:?}");
    assert!(again.stderr.contains(&code), "{code}: {again:?}");
    let history = t.history(order).await;
    assert_eq!(history.iter().filter(|e| e.command == "hold").count(), 1);
}

/// Publishes hold, resume, hold, … on `order` through JetStream, without
/// waiting for outcomes, until `stop` is set and `after_stop` more went
/// out; returns how many it published.
async fn burst(t: &TestApp, order: OrderId, stop: Arc<AtomicBool>, after_stop: usize) -> usize {
    let mut sent = 0;
    let mut after = 0;
    while after < after_stop {
        if stop.load(Ordering::SeqCst) {
            after += 1;
        }
        let verb = if sent % 2 == 0 {
            Verb::Hold
        } else {
            Verb::Resume
        };
        let mut h = HeaderMap::new();
        h.insert(
            headers::NATS_MSG_ID,
            uuid::Uuid::new_v4().to_string().as_str(),
        );
        t.js.publish_with_headers(subjects::command(&t.tenant, order, verb), h, "{}".into())
            .await
            .expect("publish")
            .await
            .expect("stored");
        sent += 1;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    sent
}

/// A running `orderd watch`, its JSON lines collected as they come.
struct Watcher {
    child: tokio::process::Child,
    lines: tokio::sync::mpsc::UnboundedReceiver<Value>,
}

impl Watcher {
    fn start(t: &TestApp, args: &[&str], started: Arc<AtomicBool>) -> Self {
        let mut child = binary(t)
            .arg("watch")
            .args(args)
            .arg("--json")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("watch starts");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                started.store(true, Ordering::SeqCst);
                let value: Value = serde_json::from_str(&line).unwrap_or_else(|e| {
                    panic!("watch printed a line that is not JSON ({e}): {line}")
                });
                if tx.send(value).is_err() {
                    return;
                }
            }
        });
        Self { child, lines }
    }

    /// The (seq, state) lines printed for `order` until it printed `last`.
    async fn lines_until(&mut self, order: OrderId, last: u64) -> Vec<(u64, String)> {
        let lines = self.collect(&[(order, last)], Duration::ZERO).await;
        lines.get(&order.to_string()).cloned().unwrap_or_default()
    }

    /// Each order's (seq, state) lines, printed until every order of
    /// `targets` printed its seq, and during `linger` after; then stops the
    /// watch.
    async fn collect(
        &mut self,
        targets: &[(OrderId, u64)],
        linger: Duration,
    ) -> BTreeMap<String, Vec<(u64, String)>> {
        let mut seen: BTreeMap<String, Vec<(u64, String)>> = BTreeMap::new();
        let reached = |seen: &BTreeMap<String, Vec<(u64, String)>>| {
            targets.iter().all(|(order, last)| {
                seen.get(&order.to_string())
                    .and_then(|lines| lines.last())
                    .is_some_and(|(seq, _)| seq == last)
            })
        };
        let mut deadline = tokio::time::Instant::now() + WAIT;
        let mut lingering = false;
        loop {
            if !lingering && reached(&seen) {
                lingering = true;
                deadline = tokio::time::Instant::now() + linger;
            }
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(line)) => seen
                    .entry(line["orderId"].as_str().expect("an order id").to_owned())
                    .or_default()
                    .push((
                        line["seq"].as_u64().expect("a seq"),
                        line["state"].as_str().expect("a state").to_owned(),
                    )),
                _ if lingering => break,
                _ => panic!("watch stopped printing before {targets:?}; it printed {seen:?}"),
            }
        }
        let _ = self.child.kill().await;
        seen
    }
}

fn assert_contiguous(what: &str, seqs: &[u64], last: u64) {
    let first = seqs.first().copied().unwrap_or(0);
    let expected: Vec<u64> = (first..=last).collect();
    assert_eq!(
        seqs, expected,
        "{what}: each seq once, in order, from its first line"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_begun_in_a_burst_prints_each_change_once_in_order() {
    let t = Arc::new(spawn_app().await);
    let order = create(&t, &create_body("SEQUENTIAL", &["PICKUP"])).await;
    let id = order.to_string();

    // The burst runs before, while and after both watchers begin.
    let started = Arc::new(AtomicBool::new(false));
    let running = {
        let (t, started) = (t.clone(), started.clone());
        tokio::spawn(async move { burst(&t, order, started, 60).await })
    };
    let live = t.get(order).await;
    let mut before = live["seq"].as_u64().unwrap_or(0);
    let deadline = tokio::time::Instant::now() + WAIT;
    while before < 10 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the burst did not start"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        before = t.get(order).await["seq"].as_u64().unwrap_or(0);
    }
    let mut one = Watcher::start(&t, &[&id], started.clone());
    let mut all = Watcher::start(&t, &[], Arc::new(AtomicBool::new(false)));
    let sent = running.await.expect("the burst");
    let last = 1 + sent as u64;

    // Every command was applied (hold and resume alternate).
    let deadline = tokio::time::Instant::now() + WAIT;
    while t.get(order).await["seq"].as_u64() != Some(last) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "orderd applied the burst"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Each line's state is the one the stream recorded at its seq (the
    // first line is the order's state, the others its events).
    let stored: BTreeMap<u64, String> = t
        .history(order)
        .await
        .into_iter()
        .map(|e| (e.seq, e.state))
        .collect();
    assert_eq!(stored.len() as u64, last);
    for (what, watcher) in [("watch ORDER", &mut one), ("watch (the tenant)", &mut all)] {
        let lines = watcher.lines_until(order, last).await;
        let seqs: Vec<u64> = lines.iter().map(|(seq, _)| *seq).collect();
        assert_contiguous(what, &seqs, last);
        assert!(seqs[0] > 1, "{what} began after the burst did: {seqs:?}");
        for (seq, state) in &lines {
            assert_eq!(Some(state), stored.get(seq), "{what}: seq {seq}");
        }
    }
}

#[tokio::test]
async fn as_of_rebuilds_an_order_with_a_long_history() {
    let t = spawn_app().await;
    let order = t.create(&create_body("SEQUENTIAL", &["PICKUP"])).await;
    // 600 holds and resumes: 601 events, more than one page of history.
    for i in 0..600 {
        let verb = if i % 2 == 0 { Verb::Hold } else { Verb::Resume };
        let out = t.command(order, verb, &json!({})).await;
        assert!(out.ok, "{i}: {out:?}");
    }
    let mut stored = testkit::stored_events(&t.js, &t.tenant).await;
    let history = stored.remove(&order.to_string()).expect("its events");
    assert_eq!(history.len(), 601);
    let id = order.to_string();
    for pick in [0, 250, 437, 599, 600] {
        let at = history[pick].at.clone();
        // Events share milliseconds: the order as of `at` is the one after
        // the last event at or before it.
        let expected = history.iter().rev().find(|e| e.at <= at).unwrap();
        let then = orderd(&t, &["get", &id, "--as-of", &at, "--json"])
            .await
            .ok()
            .json();
        assert_eq!(then["seq"], json!(expected.seq), "as of {at}");
        assert_eq!(then["state"], json!(expected.state), "as of {at}");
    }
}

/// Waits until orderd applied the order's change `seq`.
async fn applied(t: &TestApp, order: OrderId, seq: u64) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while t.get(order).await["seq"].as_u64() < Some(seq) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "orderd applied {order} up to {seq}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sets the order's region; its seq after.
async fn set_region(t: &TestApp, order: OrderId, region: &str) -> u64 {
    let body = json!({"customAttributes": {"region": region}});
    let out = t.command(order, Verb::Update, &body).await;
    assert!(out.ok, "{out:?}");
    t.get(order).await["seq"].as_u64().expect("a seq")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_narrowed_by_a_query_prints_only_matching_orders_in_order() {
    let t = Arc::new(spawn_app().await);
    t.publish_config(&json!({"attributes": [
        {"name": "region", "dataType": "string", "indexed": true}
    ]}))
    .await;
    let in_region = |region: &str| {
        let mut body = create_body("SEQUENTIAL", &["PICKUP"]);
        body["customAttributes"] = json!({"region": region});
        body
    };
    let north = [
        t.create(&in_region("north")).await,
        t.create(&in_region("north")).await,
    ];
    let south = t.create(&in_region("south")).await;

    // Bursts of holds and resumes on all three run before, while and after
    // both watches begin.
    let started = Arc::new(AtomicBool::new(false));
    let bursts: Vec<_> = [north[0], north[1], south]
        .into_iter()
        .map(|order| {
            let (t, started) = (t.clone(), started.clone());
            tokio::spawn(async move { (order, burst(&t, order, started, 30).await) })
        })
        .collect();
    applied(&t, north[0], 10).await;
    let mut by_region = Watcher::start(&t, &["--attr", "region=north"], started.clone());
    let mut on_hold = Watcher::start(&t, &["--state", "on-hold"], started.clone());
    // Orders created while the watches run: one matches from its creation.
    let late_north = t.create(&in_region("north")).await;
    let late_south = t.create(&in_region("south")).await;
    let mut last = BTreeMap::new();
    for burst in bursts {
        let (order, sent) = burst.await.expect("a burst");
        last.insert(order, 1 + sent as u64);
    }
    for (order, seq) in &last {
        applied(&t, *order, *seq).await;
    }

    // Then updates: one order leaves the region (that change is its last
    // line; the next is not printed), one joins it, one created in it
    // leaves.
    let left = set_region(&t, north[1], "south").await;
    let after_leaving = set_region(&t, north[1], "west").await;
    let joined = set_region(&t, south, "north").await;
    let late_left = set_region(&t, late_north, "east").await;

    let seen = by_region
        .collect(
            &[
                (north[0], last[&north[0]]),
                (north[1], left),
                (south, joined),
                (late_north, late_left),
            ],
            Duration::from_secs(1),
        )
        .await;
    assert_contiguous("north[0]", &seqs_of(&seen, north[0]), last[&north[0]]);
    assert!(
        seqs_of(&seen, north[0])[0] > 1,
        "began in the burst: {:?}",
        seqs_of(&seen, north[0])
    );
    assert_contiguous("north[1], up to leaving", &seqs_of(&seen, north[1]), left);
    assert!(left < after_leaving);
    assert_eq!(
        seqs_of(&seen, south),
        [joined],
        "south: from the change that made it match"
    );
    assert_contiguous("late north", &seqs_of(&seen, late_north), late_left);
    assert_eq!(seqs_of(&seen, late_north)[0], 1, "from its creation");
    assert!(!seen.contains_key(&late_south.to_string()), "{seen:?}");
    assert_eq!(seen.len(), 4, "only orders of the region: {seen:?}");

    // Watching ON_HOLD: a line shows the order on hold, or is the change
    // that took it off hold, right after one that showed it on hold.
    let seen = on_hold
        .collect(&[(north[0], last[&north[0]])], Duration::from_millis(500))
        .await;
    assert!(!seen.is_empty());
    for (order, lines) in &seen {
        for (i, (seq, state)) in lines.iter().enumerate() {
            if state == "ON_HOLD" {
                if let Some((before, _)) = i.checked_sub(1).map(|j| &lines[j]) {
                    assert!(before < seq, "{order}: in seq order: {lines:?}");
                }
                continue;
            }
            let before = i.checked_sub(1).map(|j| &lines[j]);
            assert!(
                before.is_some_and(|(b, s)| *b + 1 == *seq && s == "ON_HOLD"),
                "{order}: seq {seq} ({state}) is not the change that left ON_HOLD: {lines:?}"
            );
        }
    }
    assert_contiguous(
        "north[0] on hold and off",
        &seqs_of(&seen, north[0]),
        last[&north[0]],
    );
}

fn seqs_of(seen: &BTreeMap<String, Vec<(u64, String)>>, order: OrderId) -> Vec<u64> {
    seen.get(&order.to_string())
        .map(|lines| lines.iter().map(|(seq, _)| *seq).collect())
        .unwrap_or_default()
}

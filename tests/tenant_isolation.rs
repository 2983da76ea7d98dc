//! Tenants cannot reach each other, proved against a real nats-server running
//! the permissions orderd ships (`config/nats-server.conf`, this very file).
//!
//! Each test starts its own `nats-server -c config/nats-server.conf -js -sd
//! <temp dir>` (testkit's, the pinned release) on a free loopback port
//! (killed and cleaned up on drop),
//! connects as `orderd`, `ops` (reads everything: the observer), the
//! tenants `acme` and `globex`, each tenant with its own inbox prefix, and
//! their plugin users.
//!
//! - the positive path: a tenant publishes its commands and job updates
//!   through JetStream and gets its PubAcks, orderd consumes and acks them,
//!   answers a read request, and the tenant receives its events, job commands
//!   and outcomes; nobody sees a permissions error;
//! - a fixed list of another tenant's subjects and of server APIs: each
//!   publish and each subscription is a permissions violation, and nothing is
//!   delivered;
//! - a tenant's plugin user (`<tenant>-plugins`) receives orderd's validate
//!   requests for its tenant and answers each once, and can do nothing else:
//!   no commands, no events, no reads, no server APIs, no other inbox;
//! - [`ATTEMPTS`] random attempts (random trees, tenants, wildcards,
//!   publishes and subscriptions; `ISOLATION_ATTEMPTS` and `ISOLATION_SEED`
//!   override): the server allows exactly what the policy below allows, and
//!   no message crosses from one tenant to the other.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer::pull, stream};
use async_nats::service::ServiceExt;
use async_nats::{Client, ConnectOptions, Event, Subscriber};
use futures::StreamExt;
use orderd::subjects::{self, EventKind, Verb};
use orderd_core::model::JobStatus;
use orderd_core::{JobAction, OrderId, TenantId, WorkOrderId};
use testkit::servers::{NatsOptions, NatsServer};
use tokio::sync::mpsc;

/// Random attempts in the third test.
const ATTEMPTS: usize = 1_000;
const TENANTS: [&str; 2] = ["acme", "globex"];
const CONFIG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config/nats-server.conf");

// ---- a nats-server with the shipped permissions ---------------------------

fn password(user: &str) -> String {
    format!("{user}-test-{}", std::process::id())
}

/// The pinned nats-server running the shipped permissions, each user's
/// password in its environment; killed and cleaned up on drop.
async fn start_server() -> NatsServer {
    let env = [
        ("ORDERD_NATS_PASSWORD", password("orderd")),
        ("OPS_NATS_PASSWORD", password("ops")),
        ("ACME_NATS_PASSWORD", password("acme")),
        ("GLOBEX_NATS_PASSWORD", password("globex")),
        ("ACME_PLUGINS_NATS_PASSWORD", password(&plugin_user("acme"))),
        (
            "GLOBEX_PLUGINS_NATS_PASSWORD",
            password(&plugin_user("globex")),
        ),
    ];
    NatsServer::start(NatsOptions {
        config: Some(CONFIG.into()),
        env: env.map(|(k, v)| (k.to_owned(), v)).into(),
        ..NatsOptions::default()
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"))
}

/// A connection as `user`, with the server errors it is told about, and a
/// round trip through the server to order what it does against other
/// connections (`Client::flush` only empties the socket buffer).
struct Conn {
    client: Client,
    errors: mpsc::UnboundedReceiver<String>,
    echo: Echo,
    echoes: u64,
}

/// How a connection gets a message of its own back through the server.
enum Echo {
    /// It publishes to its own inbox and reads it back.
    Inbox { sub: Subscriber, subject: String },
    /// It may publish nothing but replies (a plugin): a partner asks it on
    /// `subject`, it answers, and the answer comes back to the partner.
    Reply { partner: Client, subject: String },
}

impl Conn {
    /// Connects as `user`. Tenants use their own inbox prefix, as the config
    /// asks them to.
    async fn open(server: &NatsServer, user: &str) -> Self {
        let (options, errors) = Self::options(user);
        let (options, subject) = if TENANTS.contains(&user) {
            (
                options.custom_inbox_prefix(inbox_prefix(user)),
                format!("{}.echo", inbox_prefix(user)),
            )
        } else {
            (options, format!("_INBOX.echo.{user}"))
        };
        let client = options.connect(server.url()).await.expect("connects");
        let sub = client.subscribe(subject.clone()).await.unwrap();
        Self::ready(client, errors, Echo::Inbox { sub, subject }).await
    }

    /// Connects as the plugin user of `tenant`; `partner` (orderd) asks it
    /// for its echoes on its own validate subject.
    async fn open_plugin(server: &NatsServer, tenant: &str, partner: &Client) -> Self {
        let user = plugin_user(tenant);
        let (options, errors) = Self::options(&user);
        let client = options.connect(server.url()).await.expect("connects");
        let subject = subjects::plugin_validate(&self::tenant(tenant), "echo");
        let mut requests = client.subscribe(subject.clone()).await.unwrap();
        let answering = client.clone();
        tokio::spawn(async move {
            while let Some(m) = requests.next().await {
                if let Some(reply) = m.reply {
                    let _ = answering.publish(reply, m.payload).await;
                }
            }
        });
        let echo = Echo::Reply {
            partner: partner.clone(),
            subject,
        };
        Self::ready(client, errors, echo).await
    }

    fn options(user: &str) -> (ConnectOptions, mpsc::UnboundedReceiver<String>) {
        let (tx, errors) = mpsc::unbounded_channel();
        let options = ConnectOptions::new()
            .user_and_password(user.into(), password(user))
            .event_callback(move |event| {
                let tx = tx.clone();
                async move {
                    if let Event::ServerError(e) = event {
                        let _ = tx.send(e.to_string());
                    }
                }
            });
        (options, errors)
    }

    async fn ready(client: Client, errors: mpsc::UnboundedReceiver<String>, echo: Echo) -> Self {
        let mut conn = Self {
            client,
            errors,
            echo,
            echoes: 0,
        };
        conn.round_trip().await;
        conn
    }

    /// Returns once the server has processed everything sent before: the
    /// server handles a connection's messages in order, so when a message to
    /// ourselves comes back, every earlier publish and subscription is done
    /// (and any error it caused has been read).
    async fn round_trip(&mut self) {
        self.echoes += 1;
        let token = format!("echo-{}", self.echoes);
        match &mut self.echo {
            Echo::Inbox { sub, subject } => {
                self.client
                    .publish(subject.clone(), token.clone().into())
                    .await
                    .unwrap();
                loop {
                    let m = next_within(sub, Duration::from_secs(10))
                        .await
                        .expect("the echo comes back");
                    if m.payload == token.as_bytes() {
                        return;
                    }
                }
            }
            Echo::Reply { partner, subject } => {
                // The answer leaves this connection after everything it
                // sent before the request arrived.
                self.client.flush().await.unwrap();
                // A flush only puts the echo's subscription on the wire: a
                // request from the partner's connection can reach the
                // server first (and only the observer hears it). Ask again
                // until the plugin answers.
                let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
                let m = loop {
                    let asked = tokio::time::timeout(
                        Duration::from_millis(500),
                        partner.request(subject.clone(), token.clone().into()),
                    )
                    .await;
                    match asked {
                        Ok(Ok(m)) => break m,
                        _ => assert!(
                            tokio::time::Instant::now() < deadline,
                            "the plugin answers its echo"
                        ),
                    }
                };
                assert_eq!(m.payload, token.as_bytes());
            }
        }
    }

    /// Waits for the permissions violation `subject` must have caused.
    async fn expect_violation(&mut self, kind: &str, subject: &str) {
        self.round_trip().await;
        let error = tokio::time::timeout(Duration::from_secs(5), self.errors.recv())
            .await
            .unwrap_or_else(|_| panic!("no permissions violation for {kind} {subject:?}"))
            .expect("the connection is alive");
        assert!(
            error.contains(&format!("Permissions Violation for {kind}"))
                && error.contains(&format!("\"{subject}\"")),
            "{kind} {subject:?} gave {error:?}"
        );
    }

    /// Publishes "attack" to each subject; each must be a permissions
    /// violation. Returns how many.
    async fn refused_publishes(&mut self, subjects: Vec<String>) -> usize {
        for subject in &subjects {
            self.client
                .publish(subject.clone(), "attack".into())
                .await
                .unwrap();
            self.expect_violation("Publish", subject).await;
        }
        subjects.len()
    }

    /// Subscribes to each subject; each must be a permissions violation.
    /// Returns the (dead) subscriptions, to prove nothing arrives on them.
    async fn refused_subscriptions(&mut self, subjects: Vec<String>) -> Vec<Subscriber> {
        let mut subscriptions = Vec::new();
        for subject in subjects {
            subscriptions.push(self.client.subscribe(subject.clone()).await.unwrap());
            self.expect_violation("Subscription", &subject).await;
        }
        subscriptions
    }

    /// Publishes `payload` to each subject, and returns once the server has
    /// routed them (to `observer` too).
    async fn publish_all(
        &mut self,
        subjects: Vec<String>,
        payload: &'static str,
        observer: &mut Conn,
    ) {
        for subject in subjects {
            self.client.publish(subject, payload.into()).await.unwrap();
        }
        self.round_trip().await;
        observer.round_trip().await;
    }

    /// Asserts the server reported no error to this connection.
    async fn no_errors(&mut self, who: &str) {
        self.round_trip().await;
        // The error callback runs on its own task: give it a moment.
        tokio::time::sleep(Duration::from_millis(20)).await;
        if let Ok(e) = self.errors.try_recv() {
            panic!("{who} got a server error: {e}");
        }
    }
}

fn inbox_prefix(tenant: &str) -> String {
    format!("_INBOX_{tenant}")
}

/// The NATS user of a tenant's validation plugins.
fn plugin_user(tenant: &str) -> String {
    format!("{tenant}-plugins")
}

fn tenant(name: &str) -> TenantId {
    TenantId::parse(name).unwrap()
}

fn order() -> OrderId {
    OrderId::parse("67e55044-10b1-426f-9247-bb680e5fe0c8").unwrap()
}

/// The next message within `wait`, if any.
async fn next_within(sub: &mut Subscriber, wait: Duration) -> Option<async_nats::Message> {
    tokio::time::timeout(wait, sub.next()).await.ok().flatten()
}

/// orderd and ops connected, with ops subscribed to everything (the
/// observer of what the server routes).
async fn observed(server: &NatsServer) -> (Conn, Conn, Subscriber) {
    let orderd = Conn::open(server, "orderd").await;
    let mut ops = Conn::open(server, "ops").await;
    let observer = ops.client.subscribe(">").await.unwrap();
    ops.round_trip().await;
    (orderd, ops, observer)
}

/// Asserts that none of `subscriptions` of `who` received anything.
async fn nothing_reaches(who: &str, subscriptions: Vec<Subscriber>) {
    for mut sub in subscriptions {
        let got = drain(&mut sub, Duration::from_millis(50)).await;
        assert!(got.is_empty(), "{who} received {:?}", got[0].subject);
    }
}

/// Every message that arrives until `quiet` passes without one.
async fn drain(sub: &mut Subscriber, quiet: Duration) -> Vec<async_nats::Message> {
    let mut all = Vec::new();
    while let Some(m) = next_within(sub, quiet).await {
        all.push(m);
    }
    all
}

// ---- the config itself ----------------------------------------------------

/// orderd can answer every tenant the config defines: each tenant block has
/// its inbox in orderd's publish permissions.
#[test]
fn orderd_may_publish_to_every_tenant_inbox_in_the_config() {
    let config = std::fs::read_to_string(CONFIG).unwrap();
    let block = |name: &str| -> String {
        let start = config
            .find(&format!("    {name} = {{"))
            .unwrap_or_else(|| panic!("no {name} block"));
        let end = config[start..].find("\n    }\n").unwrap() + start;
        config[start..end].to_owned()
    };
    let orderd = block("ORDERD");
    let tenants: Vec<String> = config
        .lines()
        .filter_map(|l| l.trim().strip_prefix("TENANT_"))
        .filter_map(|l| l.strip_suffix(" = {"))
        .map(str::to_ascii_lowercase)
        .collect();
    assert_eq!(tenants, TENANTS, "the example tenants");
    for t in &tenants {
        let inbox = format!("\"{}.>\"", inbox_prefix(t));
        assert!(orderd.contains(&inbox), "ORDERD lacks {inbox}");
        let own = block(&format!("TENANT_{}", t.to_ascii_uppercase()));
        assert_eq!(
            own.matches(&inbox).count(),
            2,
            "{t} publishes and reads its inbox"
        );
    }
}

// ---- the positive path ----------------------------------------------------

#[tokio::test]
async fn a_tenant_reaches_its_own_subjects_and_orderd_serves_it() {
    let server = start_server().await;
    let mut orderd = Conn::open(&server, "orderd").await;
    let mut ops = Conn::open(&server, "ops").await;
    let mut acme = Conn::open(&server, "acme").await;
    let t = tenant("acme");

    // orderd sets up its streams.
    let js = jetstream::new(orderd.client.clone());
    for (name, filter) in subjects::STREAMS {
        js.create_stream(stream::Config {
            name: name.into(),
            subjects: vec![filter.into()],
            ..Default::default()
        })
        .await
        .expect("orderd creates its streams");
    }

    // The tenant's commands and job updates are durable: PubAcks reach it on
    // its own inbox prefix.
    let tenant_js = jetstream::new(acme.client.clone());
    for (subject, stream) in [
        (subjects::create(&t), subjects::STREAM_COMMANDS),
        (
            subjects::command(&t, order(), Verb::Hold),
            subjects::STREAM_COMMANDS,
        ),
        (
            subjects::job_update(&t, order(), WorkOrderId(1), JobStatus::Started),
            subjects::STREAM_JOBS,
        ),
    ] {
        let ack = tenant_js
            .publish(subject.clone(), "{}".into())
            .await
            .unwrap_or_else(|e| panic!("acme may publish to {subject}: {e}"))
            .await
            .unwrap_or_else(|e| panic!("a PubAck for {subject}: {e}"));
        assert_eq!(ack.stream, stream);
    }

    // orderd pulls the create and acks it.
    let consumer = js
        .get_stream(subjects::STREAM_COMMANDS)
        .await
        .unwrap()
        .create_consumer(pull::Config {
            durable_name: Some("orderd".into()),
            ..Default::default()
        })
        .await
        .expect("orderd creates a consumer");
    let mut batch = consumer
        .fetch()
        .max_messages(1)
        .messages()
        .await
        .expect("orderd fetches");
    let msg = batch.next().await.expect("a command").expect("no error");
    assert_eq!(msg.subject.as_str(), subjects::create(&t));
    msg.ack().await.expect("orderd acks");

    // The read service answers the tenant on its inbox.
    let service = orderd
        .client
        .service_builder()
        .start(subjects::SERVICE_NAME, "0.0.0")
        .await
        .expect("orderd starts its service");
    let mut endpoint = service.endpoint(subjects::API_GET).await.unwrap();
    orderd.round_trip().await;
    tokio::spawn(async move {
        while let Some(request) = endpoint.next().await {
            let _ = request.respond(Ok("a view".into())).await;
        }
    });
    let reply = acme
        .client
        .request(subjects::API_GET, r#"{"tenant":"acme"}"#.into())
        .await
        .expect("acme may call the read service");
    assert_eq!(reply.payload, "a view");

    // Operators discover the service and read stream information, and
    // change nothing.
    let pong = ops
        .client
        .request("$SRV.PING.orderd", "".into())
        .await
        .expect("ops pings the service");
    assert!(!pong.payload.is_empty());
    let mut commands = jetstream::new(ops.client.clone())
        .get_stream(subjects::STREAM_COMMANDS)
        .await
        .expect("ops reads stream info");
    assert_eq!(commands.info().await.unwrap().state.messages, 2);
    let delete = "$JS.API.STREAM.DELETE.ORDERD_CMD";
    ops.client.publish(delete, "".into()).await.unwrap();
    ops.expect_violation("Publish", delete).await;

    // Events, job commands and outcomes reach the tenant.
    let mut events = acme
        .client
        .subscribe(subjects::events_of_tenant(&t))
        .await
        .unwrap();
    let mut jobs = acme
        .client
        .subscribe(subjects::dispatch_of_tenant(&t))
        .await
        .unwrap();
    let outcome = format!("{}.outcome.1", inbox_prefix("acme"));
    let mut outcomes = acme.client.subscribe(outcome.clone()).await.unwrap();
    acme.round_trip().await;
    let event = subjects::event(&t, order(), EventKind::Created);
    let dispatch = subjects::dispatch(&t, order(), WorkOrderId(1), JobAction::Create);
    for subject in [&event, &dispatch, &outcome] {
        orderd
            .client
            .publish(subject.clone(), "x".into())
            .await
            .unwrap();
    }
    let wait = Duration::from_secs(5);
    let got = next_within(&mut events, wait).await.expect("an event");
    assert_eq!(got.subject.as_str(), event);
    let got = next_within(&mut jobs, wait).await.expect("a job command");
    assert_eq!(got.subject.as_str(), dispatch);
    let got = next_within(&mut outcomes, wait).await.expect("an outcome");
    assert_eq!(got.subject.as_str(), outcome);

    orderd.no_errors("orderd").await;
    acme.no_errors("acme").await;
    ops.no_errors("ops").await;
}

// ---- a fixed list of what must be refused ---------------------------------

/// Subjects `attacker` must not publish to.
fn forbidden_publishes(attacker: &str, victim: &str) -> Vec<String> {
    let v = tenant(victim);
    let a = tenant(attacker);
    vec![
        subjects::create(&v),
        subjects::command(&v, order(), Verb::Cancel),
        subjects::job_update(&v, order(), WorkOrderId(1), JobStatus::Completed),
        // Forged events and job commands, the victim's and its own.
        subjects::event(&v, order(), EventKind::Closed),
        subjects::dispatch(&v, order(), WorkOrderId(1), JobAction::Cancel),
        subjects::event(&a, order(), EventKind::Closed),
        subjects::dispatch(&a, order(), WorkOrderId(1), JobAction::Cancel),
        // The streams hold every tenant's messages.
        "$JS.API.INFO".into(),
        "$JS.API.STREAM.LIST".into(),
        "$JS.API.STREAM.DELETE.ORDERD_CMD".into(),
        "$JS.API.STREAM.MSG.GET.ORDERD_EVT".into(),
        "$JS.API.CONSUMER.CREATE.ORDERD_EVT".into(),
        "$JS.API.DIRECT.GET.ORDERD_EVT".into(),
        "$JS.ACK.ORDERD_CMD.orderd.1.1.1.1.0".into(),
        "$KV.leases.order".into(),
        "$SRV.PING".into(),
        "$SYS.REQ.SERVER.PING".into(),
        "_INBOX.x1".into(),
        format!("{}.x1", inbox_prefix(victim)),
        format!("orderd.v1.{victim}.api.get"),
        "orderd.v1.*.cmd.create".into(),
        "orderd.v1.>".into(),
        ">".into(),
    ]
}

/// Subjects `attacker` must not subscribe to.
fn forbidden_subscriptions(attacker: &str, victim: &str) -> Vec<String> {
    let v = tenant(victim);
    vec![
        subjects::events_of_tenant(&v),
        subjects::dispatch_of_tenant(&v),
        subjects::commands_of_tenant(&v),
        subjects::job_updates_of_tenant(&v),
        // Not even its own commands: only orderd reads those.
        subjects::commands_of_tenant(&tenant(attacker)),
        format!("{}.>", inbox_prefix(victim)),
        "_INBOX.>".into(),
        "_INBOX_*.>".into(),
        subjects::FILTER_EVENTS.into(),
        "orderd.v1.*.dispatch.>".into(),
        "orderd.>".into(),
        "orderd.v1.api.>".into(),
        "$JS.>".into(),
        "$JS.API.>".into(),
        "$SRV.>".into(),
        ">".into(),
    ]
}

#[tokio::test]
async fn another_tenants_subjects_and_the_server_apis_are_refused() {
    let server = start_server().await;
    let (mut orderd, mut ops, mut observer) = observed(&server).await;
    let mut published = 0;
    let mut subscribed = 0;
    for (attacker, victim) in [("acme", "globex"), ("globex", "acme")] {
        let mut conn = Conn::open(&server, attacker).await;
        published += conn
            .refused_publishes(forbidden_publishes(attacker, victim))
            .await;
        let subscriptions = conn
            .refused_subscriptions(forbidden_subscriptions(attacker, victim))
            .await;
        subscribed += subscriptions.len();
        // The victim's traffic flows; none of it reaches the attacker.
        let v = tenant(victim);
        let traffic = vec![
            subjects::event(&v, order(), EventKind::Created),
            subjects::dispatch(&v, order(), WorkOrderId(1), JobAction::Create),
            subjects::create(&v),
            format!("{}.reply", inbox_prefix(victim)),
            "_INBOX.reply".into(),
        ];
        orderd.publish_all(traffic, "victim", &mut ops).await;
        nothing_reaches(attacker, subscriptions).await;
        conn.no_errors(attacker).await;
    }
    // Not one attack reached the server's routing.
    ops.round_trip().await;
    let seen = drain(&mut observer, Duration::from_millis(100)).await;
    let victim_messages = seen.iter().filter(|m| m.payload == "victim").count();
    assert_eq!(victim_messages, 10, "the observer sees what is routed");
    let attacks = seen.iter().filter(|m| m.payload == "attack").count();
    assert_eq!(attacks, 0, "forbidden publishes delivered");
    println!("refused: {published} publishes, {subscribed} subscriptions; delivered: {attacks}");
}

// ---- validation plugins ---------------------------------------------------

/// Subjects the plugin user of `own` must not publish to: every orderd
/// tree (its own tenant's included), the read and configuration service,
/// the server APIs, and any inbox it was not asked from.
fn plugin_forbidden_publishes(own: &str, other: &str) -> Vec<String> {
    let t = tenant(own);
    let o = tenant(other);
    vec![
        subjects::create(&t),
        subjects::command(&t, order(), Verb::Cancel),
        subjects::job_update(&t, order(), WorkOrderId(1), JobStatus::Completed),
        subjects::event(&t, order(), EventKind::Closed),
        subjects::dispatch(&t, order(), WorkOrderId(1), JobAction::Create),
        subjects::create(&o),
        subjects::plugin_validate(&t, "credit"),
        subjects::plugin_validate(&o, "credit"),
        subjects::API_GET.into(),
        subjects::API_CONFIG_PUBLISH.into(),
        "$JS.API.INFO".into(),
        "$JS.API.STREAM.MSG.GET.ORDERD_EVT".into(),
        "$JS.API.CONSUMER.CREATE.ORDERD_EVT".into(),
        "$JS.API.DIRECT.GET.ORDERD_EVT".into(),
        "$KV.leases.order".into(),
        "$SRV.PING".into(),
        "$SYS.REQ.SERVER.PING".into(),
        "_INBOX.not-asked".into(),
        format!("{}.not-asked", inbox_prefix(own)),
        ">".into(),
    ]
}

/// Subjects the plugin user of `own` must not subscribe to: anything but
/// its own tenant's validate requests.
fn plugin_forbidden_subscriptions(own: &str, other: &str) -> Vec<String> {
    let t = tenant(own);
    let o = tenant(other);
    vec![
        subjects::events_of_tenant(&t),
        subjects::commands_of_tenant(&t),
        subjects::job_updates_of_tenant(&t),
        subjects::dispatch_of_tenant(&t),
        subjects::plugin_validate(&o, "credit"),
        format!("orderd.v1.{own}.plugin.>"),
        "orderd.v1.*.plugin.*.validate".into(),
        subjects::FILTER_EVENTS.into(),
        "_INBOX.>".into(),
        format!("{}.>", inbox_prefix(own)),
        "$JS.API.>".into(),
        "$SRV.>".into(),
        ">".into(),
    ]
}

#[tokio::test]
async fn a_tenants_plugin_answers_validate_requests_and_does_nothing_else() {
    let server = start_server().await;
    let (mut orderd, mut ops, mut observer) = observed(&server).await;
    for (own, other) in [("acme", "globex"), ("globex", "acme")] {
        let mut plugin = Conn::open_plugin(&server, own, &orderd.client).await;

        // It serves its tenant's validate requests as a queue group, and
        // orderd asks it as plugins.rs does: a request from orderd's inbox.
        let subject = subjects::plugin_validate(&tenant(own), "credit");
        let mut requests = plugin
            .client
            .queue_subscribe(subject.clone(), "credit".into())
            .await
            .unwrap();
        plugin.round_trip().await;
        let asking = orderd
            .client
            .request(subject.clone(), r#"{"plugin":"credit"}"#.into());
        let answering = async {
            let request = next_within(&mut requests, Duration::from_secs(10))
                .await
                .expect("the plugin receives the validate request");
            assert_eq!(request.subject.as_str(), subject);
            assert_eq!(request.payload, r#"{"plugin":"credit"}"#);
            let reply = request.reply.expect("a reply subject").to_string();
            plugin
                .client
                .publish(reply.clone(), r#"{"ok":true}"#.into())
                .await
                .unwrap();
            reply
        };
        let (answer, reply) = tokio::join!(asking, answering);
        let answer = answer.expect("orderd receives the plugin's answer");
        assert_eq!(answer.payload, r#"{"ok":true}"#);
        assert!(reply.starts_with("_INBOX."), "{reply}");
        // One answer per request: a second one is refused.
        plugin
            .client
            .publish(reply.clone(), r#"{"ok":false}"#.into())
            .await
            .unwrap();
        plugin.expect_violation("Publish", &reply).await;

        plugin
            .refused_publishes(plugin_forbidden_publishes(own, other))
            .await;
        let refused = plugin
            .refused_subscriptions(plugin_forbidden_subscriptions(own, other))
            .await;
        // orderd's traffic flows; the plugin sees none of it, and none of
        // the other tenant's validate requests.
        let traffic = vec![
            subjects::event(&tenant(own), order(), EventKind::Created),
            subjects::dispatch(&tenant(own), order(), WorkOrderId(1), JobAction::Create),
            subjects::create(&tenant(own)),
            subjects::plugin_validate(&tenant(other), "credit"),
            "_INBOX.reply".into(),
        ];
        orderd.publish_all(traffic, "orderd", &mut ops).await;
        nothing_reaches(&plugin_user(own), refused).await;
        let got = drain(&mut requests, Duration::from_millis(50)).await;
        assert!(
            got.is_empty(),
            "{own}'s plugin received {:?}",
            got[0].subject
        );
        plugin.no_errors(&plugin_user(own)).await;
    }
    ops.round_trip().await;
    let seen = drain(&mut observer, Duration::from_millis(100)).await;
    let routed = seen.iter().filter(|m| m.payload == "orderd").count();
    assert_eq!(routed, 10, "the observer sees what is routed");
    let attacks = seen.iter().filter(|m| m.payload == "attack").count();
    assert_eq!(attacks, 0, "forbidden publishes of a plugin delivered");
    orderd.no_errors("orderd").await;
}

// ---- random attempts ------------------------------------------------------

/// The policy the config must enforce for a tenant, written from the
/// contract, not copied from the config.
fn tenant_may(tenant: &str, publish: bool, subject: &str) -> bool {
    let t = self::tenant(tenant);
    let inbox = format!("{}.>", inbox_prefix(tenant));
    let allowed: Vec<String> = if publish {
        vec![
            subjects::commands_of_tenant(&t),
            subjects::job_updates_of_tenant(&t),
            format!("{}.>", subjects::API_GROUP),
            inbox,
        ]
    } else {
        vec![
            subjects::events_of_tenant(&t),
            subjects::dispatch_of_tenant(&t),
            inbox,
        ]
    };
    allowed.iter().any(|p| testkit::subject_matches(p, subject))
}

/// Whether a delivered subject lies in `tenant`'s own space (its tree, its
/// inbox, or the shared read service).
fn own_space(tenant: &str, subject: &str) -> bool {
    let mut tokens = subject.split('.');
    match (tokens.next(), tokens.next(), tokens.next()) {
        (Some("orderd"), Some("v1"), Some(t)) => t == tenant || t == subjects::RESERVED_TENANT,
        (Some(first), _, _) => first == inbox_prefix(tenant),
        _ => false,
    }
}

/// splitmix64: a small seeded generator, so a failing run can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }

    fn token(&mut self) -> String {
        let n = 1 + self.below(6);
        (0..n)
            .map(|_| char::from(b"abcxyz019_-AZ"[self.below(13)]))
            .collect()
    }
}

/// A random subject: the attacker's own trees (each of them, for either
/// action), the other tenant's and wildcard tenants, server APIs, inboxes,
/// the read service, or noise; then a tail with ids, verbs and wildcards.
fn random_subject(rng: &mut Rng, attacker: &str, victim: &str) -> String {
    let random = rng.token();
    let mut tokens: Vec<String> = match rng.below(10) {
        0..=2 => {
            let tree = rng.pick(&["cmd", "job", "evt", "dispatch"]);
            vec!["orderd".into(), "v1".into(), attacker.into(), tree.into()]
        }
        3..=5 => {
            let version = rng.pick(&["v1", "v1", "*", "v2"]);
            let tenant = rng.pick(&[victim, victim, "*", ">", "api", "ACME", &random]);
            let tree = rng.pick(&["cmd", "job", "evt", "dispatch", "api", "*", ">", "get"]);
            vec!["orderd".into(), version.into(), tenant.into(), tree.into()]
        }
        6 => {
            let api = rng.pick(&["$JS.API", "$JS.ACK", "$JS", "$KV", "$SRV", "$SYS.REQ"]);
            api.split('.').map(str::to_owned).collect()
        }
        7 => {
            let inboxes = [
                inbox_prefix(attacker),
                inbox_prefix(victim),
                "_INBOX".into(),
                "_INBOX_*".into(),
            ];
            vec![inboxes[rng.below(inboxes.len())].clone()]
        }
        8 => vec!["orderd".into(), "v1".into(), "api".into()],
        _ => vec![rng.pick(&["*", ">", "orderd", "evt", &random]).into()],
    };
    let order = order().to_string();
    for _ in 0..rng.below(5) {
        let random = rng.token();
        let tail = [
            order.as_str(),
            "1",
            "create",
            "hold",
            "started",
            "created",
            "*",
            ">",
            &random,
        ];
        tokens.push(rng.pick(&tail).into());
    }
    // `>` may only close a subject: cut there.
    if let Some(end) = tokens.iter().position(|t| t == ">") {
        tokens.truncate(end + 1);
    }
    tokens.join(".")
}

struct Attempt {
    attacker: &'static str,
    publish: bool,
    subject: String,
    allowed: bool,
}

#[tokio::test]
async fn random_attempts_never_cross_tenants() {
    let attempts: usize = std::env::var("ISOLATION_ATTEMPTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(ATTEMPTS);
    let seed: u64 = std::env::var("ISOLATION_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
    println!("ISOLATION_SEED={seed} ISOLATION_ATTEMPTS={attempts}");
    let started = Instant::now();
    let mut rng = Rng(seed);

    let server = start_server().await;
    let (mut orderd, mut ops, mut observer) = observed(&server).await;
    let mut conns = Vec::new();
    for t in TENANTS {
        conns.push(Conn::open(&server, t).await);
    }

    let mut log: Vec<Attempt> = Vec::new();
    let mut kept: Vec<(&'static str, Subscriber)> = Vec::new();
    for i in 0..attempts {
        let a = rng.below(2);
        let (attacker, victim) = (TENANTS[a], TENANTS[1 - a]);
        let publish = rng.below(5) < 3;
        let subject = random_subject(&mut rng, attacker, victim);
        let allowed = tenant_may(attacker, publish, &subject);
        let conn = &mut conns[a];
        if publish {
            conn.client
                .publish(subject.clone(), format!("attempt-{i}").into())
                .await
                .unwrap();
        } else {
            kept.push((
                attacker,
                conn.client.subscribe(subject.clone()).await.unwrap(),
            ));
        }
        if allowed {
            conn.round_trip().await;
        } else {
            let kind = if publish { "Publish" } else { "Subscription" };
            conn.expect_violation(kind, &subject).await;
        }
        log.push(Attempt {
            attacker,
            publish,
            subject,
            allowed,
        });
    }
    for (t, conn) in TENANTS.iter().zip(&mut conns) {
        conn.no_errors(t).await;
    }

    // Probe every subscription that was kept: orderd publishes into every
    // tree and inbox of both tenants.
    for t in TENANTS {
        let id = tenant(t);
        for subject in [
            subjects::event(&id, order(), EventKind::Created),
            subjects::event(&id, order(), EventKind::Changed),
            subjects::dispatch(&id, order(), WorkOrderId(1), JobAction::Create),
            subjects::create(&id),
            subjects::command(&id, order(), Verb::Hold),
            subjects::job_update(&id, order(), WorkOrderId(1), JobStatus::Started),
            format!("{}.probe", inbox_prefix(t)),
        ] {
            orderd
                .client
                .publish(subject, "probe".into())
                .await
                .unwrap();
        }
    }
    orderd
        .client
        .publish("_INBOX.probe", "probe".into())
        .await
        .unwrap();
    orderd.round_trip().await;
    ops.round_trip().await;

    let mut crossings = Vec::new();
    let mut probes_received = 0;
    for (attacker, sub) in &mut kept {
        for m in drain(sub, Duration::from_millis(20)).await {
            probes_received += 1;
            if !own_space(attacker, m.subject.as_str()) {
                crossings.push(format!("{attacker} received {}", m.subject));
            }
        }
    }
    // Every attack publish the server routed: exactly the allowed ones, and
    // each inside its publisher's own space.
    let mut delivered = BTreeSet::new();
    for m in drain(&mut observer, Duration::from_millis(100)).await {
        let Some(i) = std::str::from_utf8(&m.payload)
            .ok()
            .and_then(|p| p.strip_prefix("attempt-"))
            .and_then(|i| i.parse::<usize>().ok())
        else {
            continue;
        };
        let attempt = &log[i];
        assert_eq!(m.subject.as_str(), attempt.subject);
        if !own_space(attempt.attacker, &attempt.subject) {
            crossings.push(format!(
                "{} published to {}",
                attempt.attacker, attempt.subject
            ));
        }
        delivered.insert(i);
    }
    let expected: BTreeSet<usize> = log
        .iter()
        .enumerate()
        .filter(|(_, a)| a.publish && a.allowed)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(
        delivered, expected,
        "routed publishes differ from the policy"
    );
    assert!(crossings.is_empty(), "{crossings:#?}");

    let refused = log.iter().filter(|a| !a.allowed).count();
    let publishes = log.iter().filter(|a| a.publish).count();
    println!(
        "{attempts} attempts ({publishes} publishes, {} subscriptions) in {:?}: \
         {refused} refused as the policy says, {} allowed publishes routed, \
         {probes_received} probe deliveries to allowed subscriptions, \
         {} deliveries across tenants",
        attempts - publishes,
        started.elapsed(),
        expected.len(),
        crossings.len()
    );
    // The run must have tried both sides of the policy.
    assert!(refused > attempts / 4 && expected.len() > attempts / 10);
}

// ---- what the server does not check ---------------------------------------

/// nats-server (2.9.10, 2.12.8) does not check a publisher's reply subject:
/// a tenant can aim the PubAck of its own command at another tenant's inbox.
/// What arrives there is the sender's own PubAck (stream and sequence), never
/// the other tenant's data; but any responder, orderd included, must answer
/// only into the caller's own inbox (docs/RELIABILITY.md). This test pins the
/// server's behaviour, so a server that starts refusing it shows up here.
#[tokio::test]
async fn a_reply_subject_can_name_another_tenants_inbox() {
    let server = start_server().await;
    let orderd = Conn::open(&server, "orderd").await;
    jetstream::new(orderd.client.clone())
        .create_stream(stream::Config {
            name: subjects::STREAM_COMMANDS.into(),
            subjects: vec![subjects::FILTER_COMMANDS.into()],
            ..Default::default()
        })
        .await
        .unwrap();
    let mut acme = Conn::open(&server, "acme").await;
    let mut globex = Conn::open(&server, "globex").await;
    let aimed = format!("{}.aimed", inbox_prefix("globex"));
    let mut inbox = globex.client.subscribe(aimed.clone()).await.unwrap();
    globex.round_trip().await;
    acme.client
        .publish_with_reply(subjects::create(&tenant("acme")), aimed, "{}".into())
        .await
        .unwrap();
    acme.no_errors("acme").await;
    let got = next_within(&mut inbox, Duration::from_secs(5))
        .await
        .expect("the server delivers the PubAck where the reply subject says");
    let ack: serde_json::Value = serde_json::from_slice(&got.payload).unwrap();
    let keys: Vec<&str> = ack
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["seq", "stream"], "{ack}");
}

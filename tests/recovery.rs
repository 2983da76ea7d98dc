//! Crashes and contention: kill -9 of orderd in the middle of a stream of
//! commands, two orderd instances on the same servers, two writers of one
//! snapshot version, and Redis going away for a while. Nothing is lost,
//! nothing is done twice, and every order's events are numbered 1, 2, 3…
//! without a gap or a double.

use std::collections::BTreeMap;
use std::time::Duration;

use async_nats::HeaderMap;
use futures::StreamExt;

use orderd::headers;
use orderd::store::{Epoch, Snapshot, SnapshotStore, StoreError};
use orderd::subjects::{self, Verb};
use orderd::wire::EventMessage;
use orderd_core::{OrderId, OrderState};
use testkit::{complete_everything, create_body, msg_id, stored_events, Process, Servers, TestApp};

/// Each order's stored events are exactly 1..=n, in order, and end in `state`.
fn assert_contiguous(
    events: &BTreeMap<String, Vec<EventMessage>>,
    orders: &[OrderId],
    state: &str,
) {
    assert_eq!(
        events.len(),
        orders.len(),
        "events for every order and no other"
    );
    for order in orders {
        let list = &events[&order.to_string()];
        let seqs: Vec<u64> = list.iter().map(|e| e.seq).collect();
        let expected: Vec<u64> = (1..=list.len() as u64).collect();
        assert_eq!(seqs, expected, "order {order}: gap or double");
        assert_eq!(list.last().unwrap().state, state, "order {order}");
    }
}

#[tokio::test]
async fn kill_9_mid_stream_then_restart_completes_every_order_once() {
    let servers = Servers::start().await;
    let first = Process::start(&servers);
    let t = testkit::client_for(servers).await;
    testkit::wait_healthy(&t.nats).await;
    let mut events = t.events().await;
    let dispatch = t.dispatcher(complete_everything()).await;

    let orders = t.publish_creates(60).await;
    // Let orderd get part of the way, then pull the plug.
    let mut done = std::collections::BTreeSet::new();
    while done.len() < 4 {
        let e = events
            .wait_for("progress", |e| {
                e.state == "EXECUTED" && !done.contains(&e.order_id)
            })
            .await;
        done.insert(e.order_id);
    }
    first.kill9();
    let at_kill = stored_events(&t.js, &t.tenant).await;
    let executed_at_kill = at_kill
        .values()
        .filter(|list| list.iter().any(|e| e.state == "EXECUTED"))
        .count();
    assert!(
        (4..orders.len()).contains(&executed_at_kill),
        "the kill came too late to test anything: {executed_at_kill} executed"
    );

    let _second = Process::start(&t.servers);
    testkit::wait_healthy(&t.nats).await;
    for order in &orders {
        events.wait_state(*order, "EXECUTED").await;
    }

    let stored = stored_events(&t.js, &t.tenant).await;
    assert_contiguous(&stored, &orders, "EXECUTED");
    // Every job was created once per work order and attempt: the stream
    // deduped any re-publish from the outbox.
    for order in &orders {
        let actions = dispatch.actions_of(*order);
        assert_eq!(
            actions.get(&(1, 1, "create".into())),
            Some(&1),
            "{order}: {actions:?}"
        );
        assert_eq!(
            actions.get(&(2, 1, "create".into())),
            Some(&1),
            "{order}: {actions:?}"
        );
        assert_eq!(actions.len(), 2, "{order}: {actions:?}");
    }
}

#[tokio::test]
async fn two_instances_share_the_work_and_never_both_apply_a_command() {
    let servers = Servers::start().await;
    let settings = servers.settings();
    let t = testkit::client_for(servers).await;
    let a = testkit::App::start(settings.clone(), &t.nats).await;
    let b = testkit::App::start(settings, &t.nats).await;
    let mut events = t.events().await;
    let _dispatch = t.dispatcher(complete_everything()).await;

    let orders = t.publish_creates(20).await;
    for order in &orders {
        events.wait_state(*order, "EXECUTED").await;
    }
    // Close them all at once: both instances take a share.
    for order in &orders {
        let mut h = HeaderMap::new();
        h.insert(headers::NATS_MSG_ID, msg_id().as_str());
        t.js.publish_with_headers(
            subjects::command(&t.tenant, *order, Verb::Close),
            h,
            "{}".into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    }
    for order in &orders {
        events.wait_state(*order, "CLOSED").await;
    }
    let stored = stored_events(&t.js, &t.tenant).await;
    assert_contiguous(&stored, &orders, "CLOSED");
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn a_tenants_earlier_owner_cannot_write_once_a_later_claim_raised_its_epoch() {
    let servers = Servers::start().await;
    let old_owner = servers.store().await;
    let new_owner = servers.store().await;
    let tenant = testkit::random_tenant();
    let unit = orderd::subjects::Unit::first(&tenant);
    let id = OrderId(uuid::Uuid::new_v4());
    let mut order = orderd_core::Order::blank(id, tenant.clone());
    order.seq = 1;
    order.state = OrderState::Created;
    let epoch = |generation, revision| Epoch {
        generation,
        revision,
    };
    assert!(old_owner.fence(&unit, epoch(5, 7)).await.unwrap());
    let mut v1 = Snapshot::new(order.clone(), vec![], 1);
    old_owner.save(&mut v1, None).await.unwrap();

    // The new owner claims the tenant under a later epoch; an earlier one
    // cannot lower it, nor can a claim of an older bucket generation with
    // a higher revision.
    assert!(new_owner.fence(&unit, epoch(5, 9)).await.unwrap());
    assert!(!old_owner.fence(&unit, epoch(5, 8)).await.unwrap());
    assert!(!old_owner.fence(&unit, epoch(4, 900)).await.unwrap());
    assert_eq!(new_owner.stored_epoch(&unit).await.unwrap(), epoch(5, 9));

    // The earlier owner, still holding epoch 7, decides on what it holds:
    // its write is refused and changes nothing, its refusals too.
    let mut stale = v1.clone();
    stale.version = 2;
    stale.order.seq = 2;
    stale.order.state = OrderState::OnHold;
    match old_owner.save(&mut stale, Some(OrderState::Created)).await {
        Err(StoreError::Fenced { mine, stored, .. }) => {
            assert_eq!((mine, stored), (epoch(5, 7), epoch(5, 9)));
        }
        other => panic!("expected a fenced write, got {other:?}"),
    }
    let mut refusing = v1.clone();
    refusing.new_refusals.push((
        orderd_core::CommandId::parse("c-stale").unwrap(),
        "409".into(),
    ));
    assert!(matches!(
        old_owner.refuse(&mut refusing).await,
        Err(StoreError::Fenced { .. })
    ));
    let stored = new_owner.load(id).await.unwrap().unwrap();
    assert_eq!(
        (stored.version, stored.order.state),
        (1, OrderState::Created)
    );
    assert!(stored.refusals.is_empty());
    let on_hold = new_owner
        .orders_in_state(&tenant, OrderState::OnHold, None, 10)
        .await
        .unwrap();
    assert!(on_hold.ids.is_empty(), "the fenced write moved no index");

    // The new owner writes; once it lets go, its writes are fenced too.
    let mut next = stored.clone();
    next.version = 2;
    next.order.state = OrderState::InProgress;
    new_owner
        .save(&mut next, Some(OrderState::Created))
        .await
        .unwrap();
    new_owner.unfence(&unit);
    let mut after = next.clone();
    after.version = 3;
    match new_owner
        .save(&mut after, Some(OrderState::InProgress))
        .await
    {
        Err(StoreError::Fenced { mine, stored, .. }) => {
            assert_eq!((mine, stored), (Epoch::default(), epoch(5, 9)));
        }
        other => panic!("expected a fenced write, got {other:?}"),
    }

    // A bucket made anew (its revisions start again at 1) with a later
    // generation takes the tenant over all the same.
    assert!(new_owner.fence(&unit, epoch(6, 1)).await.unwrap());
    assert_eq!(new_owner.stored_epoch(&unit).await.unwrap(), epoch(6, 1));
}

#[tokio::test]
async fn a_second_writer_of_the_same_version_gets_stale_version() {
    let servers = Servers::start().await;
    let one = servers.store().await;
    let two = servers.store().await;
    let tenant = testkit::random_tenant();
    let id = OrderId(uuid::Uuid::new_v4());
    let mut order = orderd_core::Order::blank(id, tenant.clone());
    order.seq = 1;
    order.state = OrderState::Created;
    order.client_order_id = "PO-1".into();
    let mut v1 = Snapshot::new(order.clone(), vec![], 1);
    one.save(&mut v1, None).await.unwrap();
    // Both read version 1; both try to write version 2.
    let read_one = one.load(id).await.unwrap().unwrap();
    let read_two = two.load(id).await.unwrap().unwrap();
    let mut next_one = read_one.clone();
    next_one.version = 2;
    next_one.order.seq = 2;
    next_one.order.state = OrderState::InProgress;
    let mut next_two = read_two.clone();
    next_two.version = 2;
    next_two.order.seq = 2;
    next_two.order.state = OrderState::OnHold;
    let (r1, r2) = tokio::join!(
        one.save(&mut next_one, Some(OrderState::Created)),
        two.save(&mut next_two, Some(OrderState::Created))
    );
    let (won, lost) = match (&r1, &r2) {
        (Ok(()), Err(_)) => (&next_one, r2),
        (Err(_), Ok(())) => (&next_two, r1),
        other => panic!("exactly one writer must win: {other:?}"),
    };
    match lost {
        Err(StoreError::StaleVersion {
            expected, found, ..
        }) => {
            assert_eq!((expected, found), (1, 2));
        }
        other => panic!("{other:?}"),
    }
    let stored = one.load(id).await.unwrap().unwrap();
    assert_eq!(&stored, won);
    // The indexes moved with the winner only.
    for state in [
        OrderState::Created,
        OrderState::InProgress,
        OrderState::OnHold,
    ] {
        let page = one.orders_in_state(&tenant, state, None, 10).await.unwrap();
        let want = if state == won.order.state {
            vec![id]
        } else {
            vec![]
        };
        assert_eq!(page.ids, want, "{state}");
    }
    let page = one
        .orders_with_client_order_id(&tenant, "PO-1", None, 10)
        .await
        .unwrap();
    assert_eq!(page.ids, vec![id]);
    // A writer that skips a version is refused too.
    let mut skipping = stored.clone();
    skipping.version = 5;
    assert!(matches!(
        one.save(&mut skipping, Some(won.order.state)).await,
        Err(StoreError::StaleVersion { .. })
    ));
}

#[tokio::test]
async fn commands_wait_while_redis_is_down_and_apply_once_it_is_back() {
    let mut t = testkit::spawn_app().await;
    let mut events = t.events().await;
    let order = t.create(&create_body("SEQUENTIAL", &["PICKUP"])).await;
    events.wait_state(order, "IN_PROGRESS").await;

    t.servers.stop_redis();
    let hold_id = msg_id();
    let inbox = t.nats.new_inbox();
    let mut replies = t.nats.subscribe(inbox.clone()).await.unwrap();
    let mut h = HeaderMap::new();
    h.insert(headers::NATS_MSG_ID, hold_id.as_str());
    h.insert(headers::ORDERD_REPLY_TO, inbox.as_str());
    t.js.publish_with_headers(
        subjects::command(&t.tenant, order, Verb::Hold),
        h,
        "{}".into(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    // No answer while Redis is away: the command is not decided.
    assert!(
        tokio::time::timeout(Duration::from_millis(800), replies.next())
            .await
            .is_err(),
        "a command was answered without Redis"
    );
    t.servers.start_redis().await;
    let reply = tokio::time::timeout(testkit::WAIT, replies.next())
        .await
        .expect("answered once Redis is back")
        .unwrap();
    let outcome: orderd::wire::Outcome = serde_json::from_slice(&reply.payload).unwrap();
    assert!(outcome.ok, "{outcome:?}");
    assert_eq!(outcome.state.as_deref(), Some("ON_HOLD"));
    events.wait_state(order, "ON_HOLD").await;
    let view = t.get(order).await;
    assert_eq!(view["seq"], 2);
}

#[tokio::test]
async fn a_nats_restart_mid_stream_loses_nothing() {
    let mut t = testkit::spawn_app().await;
    let _dispatch = t.dispatcher(complete_everything()).await;
    let mut orders = t.publish_creates(10).await;
    // Kill -9 NATS while orderd works on the first ten, then send ten more.
    t.servers.restart_nats().await;
    let deadline = tokio::time::Instant::now() + testkit::WAIT;
    let more = loop {
        // The client reconnects on its own; publishes fail until it has.
        match tokio::time::timeout(Duration::from_secs(5), t.publish_creates(10)).await {
            Ok(more) => break more,
            Err(_) => assert!(
                tokio::time::Instant::now() < deadline,
                "cannot publish after the restart"
            ),
        }
    };
    orders.extend(more);
    // Every order executes; read from the stream itself, which is what
    // survived the restart.
    let deadline = tokio::time::Instant::now() + testkit::WAIT * 2;
    loop {
        let stored = tokio::time::timeout(Duration::from_secs(5), stored_events(&t.js, &t.tenant))
            .await
            .unwrap_or_default();
        let executed = stored
            .values()
            .filter(|l| l.iter().any(|e| e.state == "EXECUTED"))
            .count();
        if executed == orders.len() {
            assert_contiguous(&stored, &orders, "EXECUTED");
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            // Say where the others are: in Redis, in the event stream, and
            // what the lanes still hold.
            let store = t.servers.store().await;
            for (i, order) in orders.iter().enumerate() {
                let snap = store.load(*order).await.ok().flatten();
                let events = stored.get(&order.to_string()).map(|l| {
                    l.iter()
                        .map(|e| format!("{}:{}", e.seq, e.state))
                        .collect::<Vec<_>>()
                });
                eprintln!(
                    "order {i} {order}: redis {:?}, events {events:?}",
                    snap.map(|s| (s.version, s.order.seq, s.order.state, s.outbox.len()))
                );
            }
            if let Ok(mut stream) = t.js.get_stream(subjects::STREAM_COMMANDS).await {
                if let Ok(info) = stream.info().await {
                    eprintln!(
                        "stream: first {}, last {}, messages {}, created {}",
                        info.state.first_sequence,
                        info.state.last_sequence,
                        info.state.messages,
                        info.created
                    );
                }
                let mut names = stream.consumer_names();
                while let Some(Ok(name)) = names.next().await {
                    if let Ok(mut c) = stream
                        .get_consumer::<async_nats::jetstream::consumer::pull::Config>(&name)
                        .await
                    {
                        if let Ok(i) = c.info().await {
                            eprintln!(
                                "consumer {name}: created {}, start {:?}, pending {}, ack pending {}, redelivered {}, waiting {}, ack floor {:?}",
                                i.created, i.config.deliver_policy, i.num_pending, i.num_ack_pending, i.num_redelivered, i.num_waiting, i.ack_floor
                            );
                        }
                    }
                }
            }
            panic!("{executed} of {} executed after the restart", orders.len());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The command ids an order applied are kept apart from its snapshot (a
/// write appends the new ones), come back with every load, are never
/// appended by a refused write, and ids written inside a snapshot by an
/// earlier version are loaded and moved out by the next write.
#[tokio::test]
async fn command_ids_are_kept_apart_and_come_back_with_the_order() {
    use orderd_core::CommandId;
    let servers = Servers::start().await;
    let store = servers.store().await;
    let client = redis::Client::open(servers.redis_url.as_str()).expect("redis");
    let mut con = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let reader = con.clone();
    let raw_snap = |id: OrderId| {
        let mut con = reader.clone();
        async move {
            let b: Vec<u8> = redis::cmd("HGET")
                .arg(orderd::store::keys::order(&id))
                .arg("snap")
                .query_async(&mut con)
                .await
                .expect("hget");
            String::from_utf8_lossy(&b).into_owned()
        }
    };
    let cid = |s: &str| CommandId::parse(s).expect("id");
    let applied =
        |snap: &Snapshot, command: &str| snap.order.applied_commands.contains(&cid(command));
    // A new order (seq 1, version 1) that applied one command.
    let applied_one = |command: &str| {
        let mut order =
            orderd_core::Order::blank(OrderId(uuid::Uuid::new_v4()), testkit::random_tenant());
        order.seq = 1;
        order.applied_commands.insert(cid(command));
        Snapshot::new(order, vec![], 1)
    };

    let mut v1 = applied_one("first-command");
    let id = v1.order.id;
    v1.new_command_ids.push(cid("first-command"));
    store.save(&mut v1, None).await.unwrap();
    assert!(
        !raw_snap(id).await.contains("first-command"),
        "not in the snapshot"
    );
    let loaded = store.load(id).await.unwrap().unwrap();
    assert!(applied(&loaded, "first-command"));
    assert!(loaded.new_command_ids.is_empty(), "nothing left to append");

    // A second change appends its id; a stale write appends nothing.
    let mut v2 = loaded.clone();
    v2.version = 2;
    v2.order.seq = 2;
    v2.order.applied_commands.insert(cid("second-command"));
    v2.new_command_ids.push(cid("second-command"));
    store.save(&mut v2, None).await.unwrap();
    let mut stale = loaded.clone();
    stale.version = 2;
    stale.order.applied_commands.insert(cid("stale-command"));
    stale.new_command_ids.push(cid("stale-command"));
    assert!(
        store.save(&mut stale, None).await.is_err(),
        "the stale write is refused"
    );
    let loaded = store.load(id).await.unwrap().unwrap();
    let ids: Vec<&str> = loaded
        .order
        .applied_commands
        .iter()
        .map(CommandId::as_str)
        .collect();
    assert_eq!(ids, ["first-command", "second-command"]);
    assert_eq!(loaded.order, v2.order, "the order as it was written");

    // A snapshot written with its ids inside (before they had a key).
    let legacy = applied_one("legacy-command");
    let legacy_id = legacy.order.id;
    let _: () = redis::cmd("HSET")
        .arg(orderd::store::keys::order(&legacy_id))
        .arg("v")
        .arg(1)
        .arg("snap")
        .arg(rmp_serde::to_vec_named(&legacy).unwrap())
        .query_async(&mut con)
        .await
        .unwrap();
    let loaded = store.load(legacy_id).await.unwrap().unwrap();
    assert!(applied(&loaded, "legacy-command"));
    assert_eq!(loaded.new_command_ids, [cid("legacy-command")]);
    let mut next = loaded.clone();
    next.version = 2;
    store.save(&mut next, None).await.unwrap();
    assert!(
        !raw_snap(legacy_id).await.contains("legacy-command"),
        "moved out"
    );
    let loaded = store.load(legacy_id).await.unwrap().unwrap();
    assert!(applied(&loaded, "legacy-command"));
}

/// A tenant's commands that are still unacknowledged at the tenant
/// discovery (taken by an instance that went away, or lost on the way when
/// nats-server restarted) are not skipped: the tenant's lane starts at its
/// first message in the stream, not at the first one the discovery happens
/// to see, and the discovery acknowledges only what it saw.
#[tokio::test]
async fn a_tenants_commands_pending_at_the_discovery_are_not_skipped() {
    let adjust = |s: &mut orderd::settings::Settings| s.consumers.ack_wait_secs = 2;
    let mut t = testkit::spawn_app_with(adjust).await;
    t.stop_app().await;
    let mut orders = t.publish_creates(5).await;
    // Another instance takes them from the discovery, and vanishes.
    let mut settings = t.servers.settings();
    adjust(&mut settings);
    let spec = orderd::intake::consumers::intake_streams()[0];
    let discovery: async_nats::jetstream::consumer::PullConsumer =
        t.js.get_stream(spec.name)
            .await
            .expect("stream")
            .get_consumer(&orderd::intake::consumers::discovery_name(spec, &settings))
            .await
            .expect("discovery");
    let mut discovery = discovery;
    let mut taken = discovery
        .batch()
        .max_messages(5)
        .expires(Duration::from_secs(1))
        .messages()
        .await
        .expect("fetch");
    while let Some(Ok(_unacked)) = taken.next().await {}
    // Taken here, or by a pull request the stopped instance left at the
    // server: either way delivered and not acknowledged.
    let info = discovery.info().await.expect("discovery info");
    assert_eq!(
        (info.num_ack_pending, info.num_pending),
        (5, 0),
        "the five are pending at the discovery"
    );
    // Five more; orderd starts again and its discovery sees these first.
    orders.extend(t.publish_creates(5).await);
    t.app = Some(testkit::App::start(settings, &t.nats).await);
    wait_for_orders(&t, &orders, "the first five were skipped").await;
}

/// Waits until every one of `orders` has its events in the stream.
async fn wait_for_orders(t: &TestApp, orders: &[OrderId], what: &str) {
    let deadline = tokio::time::Instant::now() + testkit::WAIT;
    loop {
        let stored = stored_events(&t.js, &t.tenant).await;
        let created = orders
            .iter()
            .filter(|o| stored.contains_key(&o.to_string()))
            .count();
        if created == orders.len() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{created} of {} orders created: {what}",
            orders.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_lane_deleted_at_the_server_is_opened_again_while_orderd_runs() {
    let t = testkit::spawn_app().await;
    let mut orders = t.publish_creates(1).await;
    wait_for_orders(&t, &orders, "the lane never worked").await;
    // An operator deletes the tenant's commands lane.
    let settings = t.servers.settings();
    let spec = orderd::intake::consumers::intake_streams()[0];
    let lane = orderd::intake::consumers::lane_name(
        spec,
        &orderd::subjects::Unit::first(&t.tenant),
        &settings,
    );
    let stream = t.js.get_stream(spec.name).await.expect("stream");
    let deleted = stream.delete_consumer(&lane).await.expect("lane deleted");
    assert!(deleted.success, "the lane existed");
    // The tenant's next create is decided without a restart.
    orders.extend(t.publish_creates(1).await);
    wait_for_orders(&t, &orders, "the deleted lane was not opened again").await;
    let again = stream
        .consumer_info(&lane)
        .await
        .expect("the lane exists again");
    assert_eq!(again.name, lane);
}

/// A graceful stop while commands keep arriving loses none of them: what
/// the lane had prefetched is read again after the restart. (The nak loop
/// that once dropped such messages at the server's `max_deliver` showed
/// only with three instances handing a tenant over under kills, in
/// `tests/chaos.rs`; this single-instance form passes without its fix too.)
#[tokio::test]
async fn a_stop_with_messages_prefetched_loses_none_of_them() {
    let adjust = |s: &mut orderd::settings::Settings| {
        s.consumers.max_deliver = 3;
    };
    let mut t = testkit::spawn_app_with(adjust).await;
    // Creates keep arriving while orderd stops.
    let publisher = {
        let (js, tenant) = (t.js.clone(), t.tenant.clone());
        tokio::spawn(async move {
            let mut orders = Vec::new();
            let body = serde_json::to_vec(&create_body("SEQUENTIAL", &["PICKUP"])).unwrap();
            for _ in 0..1_500 {
                let id = msg_id();
                orders.push(orderd::wire::order_id_for_create(&tenant, &id));
                let mut h = HeaderMap::new();
                h.insert(headers::NATS_MSG_ID, id.as_str());
                js.publish_with_headers(subjects::create(&tenant), h, body.clone().into())
                    .await
                    .unwrap()
                    .await
                    .unwrap();
            }
            orders
        })
    };
    let deadline = tokio::time::Instant::now() + testkit::WAIT;
    while stored_events(&t.js, &t.tenant).await.len() < 50 {
        assert!(tokio::time::Instant::now() < deadline, "no order created");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    t.stop_app().await;
    let orders = publisher.await.unwrap();
    let mut settings = t.servers.settings();
    adjust(&mut settings);
    t.app = Some(testkit::App::start(settings, &t.nats).await);
    wait_for_orders(&t, &orders, "after the restart").await;
    t.stop_app().await;
}

/// An order actor that never answers: every command routed to it stays in
/// flight.
struct Silent;

impl ractor::Actor for Silent {
    type Msg = orderd::order::RouterMsg;
    type State = Vec<orderd::order::RouterMsg>;
    type Arguments = ();

    async fn pre_start(
        &self,
        _me: ractor::ActorRef<Self::Msg>,
        (): (),
    ) -> Result<Self::State, ractor::ActorProcessingErr> {
        Ok(Vec::new())
    }

    async fn handle(
        &self,
        _me: ractor::ActorRef<Self::Msg>,
        msg: Self::Msg,
        kept: &mut Self::State,
    ) -> Result<(), ractor::ActorProcessingErr> {
        kept.push(msg);
        Ok(())
    }
}

/// A lane that stops while messages still reach its stream leaves them
/// unacknowledged for the next owner. It used to nak them, which sent them
/// straight back to the same stream, round and round, until the server's
/// `max_deliver` dropped them (the three-instance chaos test lost commands
/// that way at a hand-over).
#[tokio::test]
async fn a_stopped_lane_leaves_what_reaches_it_for_the_next_owner() {
    use async_nats::jetstream::consumer::pull;
    let servers = Servers::start().await;
    let mut settings = servers.settings();
    settings.consumers.max_deliver = 3;
    let settings = std::sync::Arc::new(settings);
    let client = async_nats::connect(&servers.nats_url).await.unwrap();
    let js = async_nats::jetstream::new(client.clone());
    orderd::bus::ensure_streams(&js, &settings).await.unwrap();
    let tenant = testkit::random_tenant();
    let spec = orderd::intake::consumers::intake_streams()[0];
    let consumer = orderd::intake::consumers::open_consumer(
        &js,
        spec,
        orderd::intake::consumers::lane_config(
            spec,
            &orderd::subjects::Unit::first(&tenant),
            &settings,
        ),
    )
    .await
    .unwrap();
    let (router, _) = ractor::Actor::spawn(None, Silent, ()).await.unwrap();
    let intake = orderd::intake::Intake {
        client: client.clone(),
        js: js.clone(),
        router,
        settings: settings.clone(),
        permits: std::sync::Arc::new(tokio::sync::Semaphore::new(64)),
        store: servers.store().await,
    };
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let lane = tokio::spawn(intake.run(consumer, stop_rx));
    let publish = |n: usize| {
        let (js, tenant) = (js.clone(), tenant.clone());
        async move {
            let body = serde_json::to_vec(&create_body("SEQUENTIAL", &["PICKUP"])).unwrap();
            for _ in 0..n {
                let mut h = HeaderMap::new();
                h.insert(headers::NATS_MSG_ID, msg_id().as_str());
                js.publish_with_headers(subjects::create(&tenant), h, body.clone().into())
                    .await
                    .unwrap()
                    .await
                    .unwrap();
            }
        }
    };
    publish(5).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Stopped while more keep coming.
    let late = tokio::spawn(publish(20));
    tokio::time::sleep(Duration::from_millis(5)).await;
    let _ = stop.send(true);
    late.await.unwrap();
    lane.await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let name = orderd::intake::consumers::lane_name(
        spec,
        &orderd::subjects::Unit::first(&tenant),
        &settings,
    );
    let stream = js.get_stream(subjects::STREAM_COMMANDS).await.unwrap();
    let info = stream
        .get_consumer::<pull::Config>(&name)
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .clone();
    // Every one is still the consumer's: in flight, delivered and not
    // acknowledged, or not delivered yet. None was dropped, and none was
    // delivered again.
    assert_eq!(
        info.num_ack_pending as u64 + info.num_pending,
        25,
        "{info:?}"
    );
    assert_eq!(info.num_redelivered, 0, "{info:?}");
}

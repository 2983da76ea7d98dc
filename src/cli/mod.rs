//! The operator's command line: `orderd get|explain|history|query|create|
//! hold|resume|cancel|close|config|watch|completions`. It is a NATS client
//! like any other: the same subjects (built in [`crate::subjects`]), the
//! same headers ([`crate::headers`]) and the same bodies ([`crate::wire`]);
//! nothing in it reaches into the service. `orderd` alone, or
//! `orderd serve`, runs the service (`main.rs`).
//!
//! - [`args`]: the clap definitions and the argument parsers;
//! - [`failure`]: how a subcommand fails, and its exit code;
//! - [`client`]: the NATS client: reads (Services API requests) and writes
//!   (JetStream publishes with an idempotency key, an `Orderd-Reply-To`
//!   inbox and, for a duplicate, the `outcome` endpoint);
//! - [`render`]: the human-readable text of every answer;
//! - [`asof`]: pure: an order at a past instant, rebuilt from its history;
//! - [`watch`]: the current state, then every change, gapless;
//! - [`narrow`]: pure: which changes a watch narrowed by query filters
//!   prints.
//!
//! Invariants: a write's idempotency key is printed (on stderr) before it
//! is sent, so any failure can be retried safely with `--idempotency-key`;
//! `--json` prints orderd's answers as they are (one JSON document per
//! line), refusals included; a refusal's stable code is printed first on
//! stderr and chooses the exit code ([`failure`]).
//!
//! May import: the wire contract ([`crate::subjects`], [`crate::headers`],
//! [`crate::wire`]) and [`crate::settings`]. Inside: `args`, `failure`,
//! `render`, `asof` and `narrow` import no sibling; `client` imports `args`
//! and `failure`; `watch` imports `args`, `client`, `failure`, `narrow` and
//! `render`.

pub mod args;
pub mod asof;
pub mod client;
pub mod failure;
pub mod narrow;
pub mod render;
pub mod watch;

use std::io::Read as _;
use std::path::Path;
use std::process::ExitCode;

use bytes::Bytes;
use clap::CommandFactory;
use orderd_core::{CommandId, OrderId, TenantConfig};
use serde_json::Value;

pub use args::{Cli, Command, ServeArgs};

use args::{ConfigCommand, Connection, ReasonArgs, Write, WriteArgs};
use client::{Client, Sent};
use failure::Failure;

use crate::subjects::{self, Verb};
use crate::wire::{
    self, ConfigDraft, ConfigReply, ConfigRequest, DryRunReply, DryRunRequest, EmptyBody,
    ErrorBody, EventMessage, HistoryRequest, HistoryResponse, OrderRequest, OrderView,
    QueryResponse, ReasonBody, ValidateReply,
};

/// Runs a client subcommand to its end and says how it went. `Serve` is
/// `main`'s to run; given here it is a usage error.
pub fn run(command: Command) -> ExitCode {
    if let Command::Completions(c) = &command {
        clap_complete::generate(
            c.shell,
            &mut Cli::command(),
            "orderd",
            &mut std::io::stdout(),
        );
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("orderd: cannot start the runtime: {e}");
            return ExitCode::from(failure::EXIT_UNEXPECTED);
        }
    };
    match runtime.block_on(dispatch(command)) {
        Ok(()) => ExitCode::from(failure::EXIT_OK),
        Err(f) => {
            f.report();
            ExitCode::from(f.exit_code())
        }
    }
}

async fn dispatch(command: Command) -> Result<(), Failure> {
    match command {
        Command::Serve(_) | Command::Completions(_) => Err(Failure::Usage(
            "serve and completions are not client commands".to_owned(),
        )),
        Command::Get(a) => get(&a.conn, a.order, a.as_of).await,
        Command::Explain(a) => explain(&a.conn, a.order).await,
        Command::History(a) => history(&a.conn, a.order, a.from_seq, a.limit).await,
        Command::Query(a) => query(a).await,
        Command::Create(a) => create(&a.write, &a.file).await,
        Command::Hold(a) => reason_command(a, Verb::Hold).await,
        Command::Resume(a) => empty_command(a, Verb::Resume).await,
        Command::Cancel(a) => reason_command(a, Verb::Cancel).await,
        Command::Close(a) => empty_command(a, Verb::Close).await,
        Command::Config(c) => config(c).await,
        Command::Watch(a) => {
            watch::check(&a)?;
            let client = Client::connect(&a.conn).await?;
            watch::run(&client, &a).await
        }
    }
}

/// Prints a line on stdout.
fn print(text: &str) {
    println!("{}", text.trim_end_matches('\n'));
}

/// Prints an answer as it came (`--json`).
fn print_raw(raw: &Bytes) {
    print(&String::from_utf8_lossy(raw));
}

fn order_request(conn: &Connection, order: OrderId) -> OrderRequest {
    OrderRequest {
        tenant: conn.tenant.to_string(),
        order_id: order.to_string(),
    }
}

async fn get(
    conn: &Connection,
    order: OrderId,
    as_of: Option<orderd_core::Timestamp>,
) -> Result<(), Failure> {
    let client = Client::connect(conn).await?;
    let Some(at) = as_of else {
        let (view, raw): (OrderView, _) = client
            .read(subjects::API_GET, &order_request(conn, order))
            .await?;
        if conn.json {
            print_raw(&raw);
        } else {
            print(&render::order(&view));
        }
        return Ok(());
    };
    let (events, _, _) = history_pages(&client, conn, order, None, None).await?;
    let rebuilt = asof::rebuild(&conn.tenant, order, &events, at).map_err(|e| match e {
        asof::AsOfError::NotYet => Failure::Refused(ErrorBody::error(
            "ORD-404-ORDER_NOT_FOUND",
            format!("order {order} did not exist yet at {}", wire::rfc3339(at)),
        )),
        other => Failure::Cannot(other.to_string()),
    })?;
    if conn.json {
        print(&serde_json::to_string(&rebuilt.view).unwrap_or_default());
    } else {
        print(&format!(
            "as of {}: rebuilt from its first {} events (the last: {} at {})\n",
            wire::rfc3339(at),
            rebuilt.applied,
            rebuilt.last_command,
            rebuilt.last_at
        ));
        print(&render::order(&rebuilt.view));
    }
    Ok(())
}

async fn explain(conn: &Connection, order: OrderId) -> Result<(), Failure> {
    let client = Client::connect(conn).await?;
    let (explanation, raw): (Value, _) = client
        .read(subjects::API_EXPLAIN, &order_request(conn, order))
        .await?;
    if conn.json {
        print_raw(&raw);
    } else {
        print(&render::explanation(&explanation));
    }
    Ok(())
}

/// An order's events from `from`: one page of at most `limit`, or (no
/// limit) every page. Also the raw pages, for `--json`, and where the next
/// page would begin.
async fn history_pages(
    client: &Client,
    conn: &Connection,
    order: OrderId,
    from: Option<u64>,
    limit: Option<u32>,
) -> Result<(Vec<EventMessage>, Vec<Bytes>, Option<u64>), Failure> {
    let mut events = Vec::new();
    let mut pages = Vec::new();
    let mut from_seq = from;
    loop {
        let request = HistoryRequest {
            tenant: conn.tenant.to_string(),
            order_id: order.to_string(),
            from_seq,
            limit,
        };
        let (page, raw): (HistoryResponse, _) =
            client.read(subjects::API_HISTORY, &request).await?;
        events.extend(page.events);
        pages.push(raw);
        match page.next_seq {
            Some(next) if limit.is_none() => from_seq = Some(next),
            next => return Ok((events, pages, next)),
        }
    }
}

async fn history(
    conn: &Connection,
    order: OrderId,
    from: Option<u64>,
    limit: Option<u32>,
) -> Result<(), Failure> {
    let client = Client::connect(conn).await?;
    let (events, pages, next) = history_pages(&client, conn, order, from, limit).await?;
    if conn.json {
        pages.iter().for_each(print_raw);
    } else {
        print(&render::history(&events));
        if let Some(next) = next {
            print(&format!("more: add --from-seq {next}"));
        }
    }
    Ok(())
}

async fn query(a: args::QueryArgs) -> Result<(), Failure> {
    let conn = &a.conn;
    let client = Client::connect(conn).await?;
    let mut request = a.filters.request(&conn.tenant, a.limit, a.after);
    loop {
        let (page, raw): (QueryResponse, _) = client.read(subjects::API_QUERY, &request).await?;
        if conn.json {
            print_raw(&raw);
        } else {
            print(&render::orders(&page));
        }
        match page.next {
            Some(next) if a.all => request.after = Some(next),
            Some(next) if !conn.json => {
                print(&format!("more: add --after {next} (or --all)"));
                return Ok(());
            }
            _ => return Ok(()),
        }
    }
}

/// Reads a file, or stdin for `-`.
fn read_input(path: &Path) -> Result<Vec<u8>, Failure> {
    if path.as_os_str() == "-" {
        let mut bytes = Vec::new();
        std::io::stdin()
            .read_to_end(&mut bytes)
            .map_err(|e| Failure::Usage(format!("cannot read stdin: {e}")))?;
        return Ok(bytes);
    }
    std::fs::read(path).map_err(|e| Failure::Usage(format!("cannot read {}: {e}", path.display())))
}

/// A JSON object from a file (or stdin).
fn read_object(path: &Path) -> Result<Value, Failure> {
    let bytes = read_input(path)?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err(Failure::Usage(format!(
            "{}: expected a JSON object",
            path.display()
        ))),
        Err(e) => Err(Failure::Usage(format!("{}: not JSON: {e}", path.display()))),
    }
}

/// The idempotency key of a write: the one given, or a fresh one. Printed
/// before the command is sent, so a retry can reuse it whatever happens.
fn idempotency_key(write: &Write) -> Result<CommandId, Failure> {
    let key = match &write.idempotency_key {
        Some(key) => key.clone(),
        None => CommandId::parse(&uuid::Uuid::new_v4().to_string())
            .map_err(|e| Failure::Unexpected(format!("a fresh idempotency key: {e}")))?,
    };
    eprintln!("idempotency key: {}", key.as_str());
    Ok(key)
}

/// Prints what became of a command; a refusal is a [`Failure`].
fn report(verb: &str, sent: &Sent, json: bool) -> Result<(), Failure> {
    let o = &sent.outcome;
    if json {
        print_raw(&sent.raw);
    } else if o.ok {
        print(&render::outcome(verb, o));
    }
    if o.ok {
        return Ok(());
    }
    Err(Failure::Refused(o.error.clone().unwrap_or_else(|| {
        ErrorBody::error("ORD-500-INTERNAL", "refused without a reason")
    })))
}

async fn create(write: &Write, file: &Path) -> Result<(), Failure> {
    let body = read_object(file)?;
    let conn = &write.conn;
    let client = Client::connect(conn).await?;
    let key = idempotency_key(write)?;
    eprintln!(
        "order: {}",
        wire::order_id_for_create(&conn.tenant, key.as_str())
    );
    let sent = client
        .send(
            subjects::create(&conn.tenant),
            wire::encode(&body, false),
            &key,
            None,
        )
        .await?;
    report("create", &sent, conn.json)
}

/// `hold` and `cancel`: a reason, and the sequence the operator saw.
async fn reason_command(a: ReasonArgs, verb: Verb) -> Result<(), Failure> {
    let body = ReasonBody {
        reason: a.reason,
        work_order_id: None,
        expected_seq: a.expected_seq,
    };
    command_on(&a.write, a.order, verb, wire::encode(&body, false)).await
}

/// `resume` and `close`: only the sequence the operator saw.
async fn empty_command(a: WriteArgs, verb: Verb) -> Result<(), Failure> {
    let body = EmptyBody {
        work_order_id: None,
        expected_seq: a.expected_seq,
    };
    command_on(&a.write, a.order, verb, wire::encode(&body, false)).await
}

async fn command_on(
    write: &Write,
    order: OrderId,
    verb: Verb,
    body: Vec<u8>,
) -> Result<(), Failure> {
    let conn = &write.conn;
    let client = Client::connect(conn).await?;
    let key = idempotency_key(write)?;
    let sent = client
        .send(
            subjects::command(&conn.tenant, order, verb),
            body,
            &key,
            Some(order),
        )
        .await?;
    report(verb.as_str(), &sent, conn.json)
}

/// A configuration from a file: the configuration itself, or an object
/// holding it under `config` (what `config get --json` prints).
fn read_config(path: &Path) -> Result<TenantConfig, Failure> {
    let mut value = read_object(path)?;
    if let Some(inner) = value.get_mut("config").filter(|c| c.is_object()) {
        value = inner.take();
    }
    serde_json::from_value(value).map_err(|e| {
        Failure::Usage(format!(
            "{}: not a tenant configuration: {e}",
            path.display()
        ))
    })
}

async fn config(command: ConfigCommand) -> Result<(), Failure> {
    match command {
        ConfigCommand::Get(a) => {
            let client = Client::connect(&a.conn).await?;
            let request = ConfigRequest {
                tenant: a.conn.tenant.to_string(),
                version: a.version,
            };
            let (reply, raw): (ConfigReply, _) =
                client.read(subjects::API_CONFIG_GET, &request).await?;
            if a.conn.json {
                print_raw(&raw);
            } else {
                print(&render::config(&reply));
            }
        }
        ConfigCommand::Validate(a) => {
            let draft = ConfigDraft {
                tenant: a.conn.tenant.to_string(),
                config: read_config(&a.file)?,
                expected_version: a.expected_version,
            };
            let client = Client::connect(&a.conn).await?;
            let (reply, raw): (ValidateReply, _) =
                client.read(subjects::API_CONFIG_VALIDATE, &draft).await?;
            if a.conn.json {
                print_raw(&raw);
            } else {
                print(&render::validated(&reply));
            }
        }
        ConfigCommand::Publish(a) => {
            let draft = ConfigDraft {
                tenant: a.conn.tenant.to_string(),
                config: read_config(&a.file)?,
                expected_version: a.expected_version,
            };
            let client = Client::connect(&a.conn).await?;
            let (reply, raw): (ConfigReply, _) =
                client.read(subjects::API_CONFIG_PUBLISH, &draft).await?;
            if a.conn.json {
                print_raw(&raw);
            } else {
                print(&format!(
                    "published version {} of {}",
                    reply.version, reply.tenant
                ));
            }
        }
        ConfigCommand::DryRun(a) => {
            let request = DryRunRequest {
                tenant: a.conn.tenant.to_string(),
                config: read_config(&a.file)?,
                limit: a.limit,
            };
            let client = Client::connect(&a.conn).await?;
            let (reply, raw): (DryRunReply, _) =
                client.read(subjects::API_CONFIG_DRYRUN, &request).await?;
            if a.conn.json {
                print_raw(&raw);
            } else {
                print(&render::dry_run(&reply));
            }
        }
    }
    Ok(())
}

//! What the command line accepts: the clap definitions, and the parsers that
//! turn an argument into a wire-contract value (a tenant, an order id, an
//! idempotency key, a time) so a bad one is a usage error before anything
//! is sent.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use orderd_core::{CommandId, OrderId, OrderState, TenantId, Timestamp};

use crate::settings::SecretUrl;
use crate::{subjects, wire};

/// The NATS URL when neither `--nats-url` nor `ORDERD_NATS_URL` names one
/// (the service's own default, `nats.url`).
pub const DEFAULT_NATS_URL: &str = "nats://127.0.0.1:4222";

const EXIT_CODES: &str = "\
Exit codes:
  0  done (a command applied, or applied before under the same idempotency key)
  1  refused: orderd answered with an error code (printed first on stderr, e.g. ORD-409-NOT_ON_HOLD),
     or what was asked cannot be done (e.g. --as-of when the order's first events have expired)
  2  usage: a bad argument, option or input file
  3  not found: the order, the command or the configuration version does not exist (ORD-404-…)
  4  unavailable: NATS or orderd did not answer in time, or answered ORD-503-…
  5  unexpected: an answer the command line cannot read";

/// orderd: order orchestration on NATS. Without a subcommand it serves.
#[derive(Debug, Parser)]
#[command(
    name = "orderd",
    version,
    about = "orderd: order orchestration on NATS. Without a subcommand it serves (as `orderd serve`).",
    long_about = "orderd: order orchestration on NATS JetStream and Redis.\n\n\
                  Without a subcommand it serves, as `orderd serve` does. Every other \
                  subcommand is an operator's client: it talks to a running orderd over \
                  NATS, on the same subjects as any client (commands through JetStream, \
                  reads through the NATS Services API endpoints orderd.v1.api.*).",
    after_help = EXIT_CODES,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// The settings file when serving (else ORDERD_CONFIG, else config/orderd.toml).
    #[arg(short, long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// What to do; serve when absent.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service (what `orderd` alone does).
    Serve(ServeArgs),
    /// Show an order, now or (--as-of) at a past instant.
    #[command(after_help = EXIT_CODES)]
    Get(GetArgs),
    /// Say what an order waits for and which commands it accepts now.
    #[command(after_help = EXIT_CODES)]
    Explain(OrderArgs),
    /// List an order's events (one per applied command), oldest first.
    #[command(after_help = EXIT_CODES)]
    History(HistoryArgs),
    /// Find a tenant's orders by state, client order id, sub-state, indexed
    /// attributes or creation time.
    #[command(after_help = EXIT_CODES)]
    Query(QueryArgs),
    /// Create an order from a JSON create body (a file, or - for stdin).
    #[command(after_help = EXIT_CODES)]
    Create(CreateArgs),
    /// Put an order on hold.
    #[command(after_help = EXIT_CODES)]
    Hold(ReasonArgs),
    /// Resume a held order.
    #[command(after_help = EXIT_CODES)]
    Resume(WriteArgs),
    /// Cancel an order.
    #[command(after_help = EXIT_CODES)]
    Cancel(ReasonArgs),
    /// Close an executed order.
    #[command(after_help = EXIT_CODES)]
    Close(WriteArgs),
    /// Read, check, try out or publish the tenant's configuration.
    #[command(subcommand, after_help = EXIT_CODES)]
    Config(ConfigCommand),
    /// Print an order's (or every order of the tenant's) current state, then
    /// every change as it happens: no gap, no double.
    ///
    /// Watching a tenant, the filters of `orderd query` (--state, --attr,
    /// --range, --sub-state, --client-order-id, --created-from/-to) narrow it:
    /// the opening list holds the open orders that match (with --state, the
    /// orders in that state), and then a change is printed when its order
    /// matches after it. The change that makes an order stop matching (it
    /// left the state, an update changed the attribute) is printed too, once,
    /// as that order's last line; its later changes are left out until one
    /// makes it match again, from which it is printed anew. Each order's
    /// lines come in seq order, without a gap while it matches.
    #[command(after_help = EXIT_CODES)]
    Watch(WatchArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(CompletionsArgs),
}

/// `orderd serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The settings file (else ORDERD_CONFIG, else config/orderd.toml).
    #[arg(short, long, value_name = "PATH")]
    pub config: Option<PathBuf>,
}

/// `orderd completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    pub shell: clap_complete::Shell,
}

/// How every client subcommand reaches orderd, and how it answers.
#[derive(Debug, Clone, Args)]
pub struct Connection {
    /// The NATS server orderd uses.
    #[arg(
        long,
        env = "ORDERD_NATS_URL",
        default_value = DEFAULT_NATS_URL,
        hide_env_values = true,
        value_name = "URL",
        value_parser = nats_url
    )]
    pub nats_url: SecretUrl,
    /// PEM file of the certificate authorities that signed the server's
    /// certificate (TLS).
    #[arg(
        long,
        env = "ORDERD_NATS_TLS_CA_FILE",
        value_name = "FILE",
        default_value = ""
    )]
    pub tls_ca: String,
    /// PEM file of this client's certificate, when the server asks for one.
    #[arg(
        long,
        env = "ORDERD_NATS_TLS_CERT_FILE",
        value_name = "FILE",
        default_value = ""
    )]
    pub tls_cert: String,
    /// PEM file of this client's private key.
    #[arg(
        long,
        env = "ORDERD_NATS_TLS_KEY_FILE",
        value_name = "FILE",
        default_value = ""
    )]
    pub tls_key: String,
    /// A `.creds` file (user JWT and nkey seed).
    #[arg(
        long,
        env = "ORDERD_NATS_CREDENTIALS_FILE",
        value_name = "FILE",
        default_value = ""
    )]
    pub creds: String,
    /// A file holding an nkey seed.
    #[arg(
        long,
        env = "ORDERD_NATS_NKEY_SEED_FILE",
        value_name = "FILE",
        default_value = ""
    )]
    pub nkey_seed: String,
    /// The tenant ([A-Za-z0-9_-]{1,64}).
    #[arg(short, long, env = "ORDERD_TENANT", value_parser = tenant)]
    pub tenant: TenantId,
    /// Print orderd's raw JSON answer (one JSON document per line) instead of text.
    #[arg(long)]
    pub json: bool,
    /// How long to wait for each answer: 10, 2.5s, 500ms, 1m.
    #[arg(long, default_value = "10s", value_parser = duration, value_name = "DURATION")]
    pub timeout: Duration,
}

/// A read of one order.
#[derive(Debug, Args)]
pub struct OrderArgs {
    /// The order id.
    #[arg(value_parser = order_id)]
    pub order: OrderId,
    /// How to reach orderd.
    #[command(flatten)]
    pub conn: Connection,
}

/// `orderd get`.
#[derive(Debug, Args)]
pub struct GetArgs {
    /// The order id.
    #[arg(value_parser = order_id)]
    pub order: OrderId,
    /// Show the order as it was at this instant (RFC 3339, e.g.
    /// 2026-12-01T10:00:00Z), rebuilt from its history: its events up to
    /// that instant applied in order, as orderd applied them. Needs the
    /// order's first events still in the events stream.
    #[arg(long, value_parser = instant, value_name = "TIME")]
    pub as_of: Option<Timestamp>,
    /// How to reach orderd.
    #[command(flatten)]
    pub conn: Connection,
}

/// `orderd history`.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// The order id.
    #[arg(value_parser = order_id)]
    pub order: OrderId,
    /// The first sequence number to show.
    #[arg(long, value_name = "SEQ")]
    pub from_seq: Option<u64>,
    /// At most this many events (default: all of them, page after page).
    #[arg(long, value_name = "N")]
    pub limit: Option<u32>,
    /// How to reach orderd.
    #[command(flatten)]
    pub conn: Connection,
}

/// Which of a tenant's orders: every filter given must match (`query`
/// lists them, `watch` follows them).
#[derive(Debug, Clone, Default, Args)]
pub struct QueryFilters {
    /// Only orders in this state (INITIATED, CREATED, IN_PROGRESS, ON_HOLD, EXECUTED, CLOSED).
    #[arg(long, value_parser = state)]
    pub state: Option<OrderState>,
    /// Only orders with this client order id.
    #[arg(long, value_name = "ID")]
    pub client_order_id: Option<String>,
    /// Only orders in this sub-state.
    #[arg(long, value_name = "SUB_STATE")]
    pub sub_state: Option<String>,
    /// An indexed custom attribute's value, NAME=VALUE (repeatable). VALUE is
    /// read as JSON when it is JSON (42, true, "42"), else as a string.
    #[arg(long = "attr", value_name = "NAME=VALUE", value_parser = attribute)]
    pub attributes: Vec<(String, serde_json::Value)>,
    /// An indexed number attribute's inclusive range, NAME=MIN..MAX (either
    /// bound may be left out: NAME=10.., NAME=..99; repeatable).
    #[arg(long = "range", value_name = "NAME=MIN..MAX", value_parser = range)]
    pub ranges: Vec<(String, wire::RangeBody)>,
    /// Only orders created at or after this time (RFC 3339).
    #[arg(long, value_name = "TIME")]
    pub created_from: Option<String>,
    /// Only orders created at or before this time (RFC 3339).
    #[arg(long, value_name = "TIME")]
    pub created_to: Option<String>,
}

impl QueryFilters {
    /// No filter given: every order.
    pub fn is_empty(&self) -> bool {
        self.state.is_none()
            && self.client_order_id.is_none()
            && self.sub_state.is_none()
            && self.attributes.is_empty()
            && self.ranges.is_empty()
            && self.created_from.is_none()
            && self.created_to.is_none()
    }

    /// The `query` endpoint's request for one page of these filters.
    pub fn request(
        &self,
        tenant: &TenantId,
        limit: Option<u32>,
        after: Option<String>,
    ) -> wire::QueryRequest {
        wire::QueryRequest {
            tenant: tenant.to_string(),
            state: self.state,
            client_order_id: self.client_order_id.clone(),
            sub_state: self.sub_state.clone(),
            custom_attributes: self.attributes.iter().cloned().collect(),
            custom_attribute_ranges: self.ranges.iter().cloned().collect(),
            created_from: self.created_from.clone(),
            created_to: self.created_to.clone(),
            limit,
            after,
        }
    }
}

/// `orderd query`.
#[derive(Debug, Args)]
pub struct QueryArgs {
    /// Which orders.
    #[command(flatten)]
    pub filters: QueryFilters,
    /// At most this many orders per page.
    #[arg(long, value_name = "N")]
    pub limit: Option<u32>,
    /// The cursor a previous page printed as `next`.
    #[arg(long, value_name = "CURSOR")]
    pub after: Option<String>,
    /// Follow the cursor to the last page.
    #[arg(long, conflicts_with = "after")]
    pub all: bool,
    /// How to reach orderd.
    #[command(flatten)]
    pub conn: Connection,
}

/// What every write takes.
#[derive(Debug, Args)]
pub struct Write {
    /// The command's idempotency key (its Nats-Msg-Id); give the key printed
    /// by an earlier try to retry it safely. Default: a fresh one.
    #[arg(long, value_parser = idempotency_key, value_name = "KEY")]
    pub idempotency_key: Option<CommandId>,
    /// How to reach orderd.
    #[command(flatten)]
    pub conn: Connection,
}

/// `orderd create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The create body (JSON, as on orderd.v1.<tenant>.cmd.create), or - for stdin.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// The idempotency key and how to reach orderd.
    #[command(flatten)]
    pub write: Write,
}

/// `orderd resume` and `orderd close`.
#[derive(Debug, Args)]
pub struct WriteArgs {
    /// The order id.
    #[arg(value_parser = order_id)]
    pub order: OrderId,
    /// Only if the order is still at this sequence, as `get` showed it
    /// (refused with ORD-409-SEQ_MISMATCH otherwise).
    #[arg(long, value_name = "SEQ")]
    pub expected_seq: Option<u64>,
    /// The idempotency key and how to reach orderd.
    #[command(flatten)]
    pub write: Write,
}

/// `orderd hold` and `orderd cancel`.
#[derive(Debug, Args)]
pub struct ReasonArgs {
    /// The order id.
    #[arg(value_parser = order_id)]
    pub order: OrderId,
    /// Why, for the record.
    #[arg(long)]
    pub reason: Option<String>,
    /// Only if the order is still at this sequence, as `get` showed it
    /// (refused with ORD-409-SEQ_MISMATCH otherwise).
    #[arg(long, value_name = "SEQ")]
    pub expected_seq: Option<u64>,
    /// The idempotency key and how to reach orderd.
    #[command(flatten)]
    pub write: Write,
}

/// `orderd config …`.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Show the tenant's configuration: the current version, or --version N.
    #[command(after_help = EXIT_CODES)]
    Get(ConfigGetArgs),
    /// Check a configuration file; stores nothing.
    #[command(after_help = EXIT_CODES)]
    Validate(ConfigFileArgs),
    /// Publish a configuration file as the tenant's next version.
    #[command(after_help = EXIT_CODES)]
    Publish(ConfigFileArgs),
    /// Replay the tenant's recent orders under a configuration file and show
    /// which would come out differently; stores nothing.
    #[command(after_help = EXIT_CODES)]
    DryRun(DryRunArgs),
}

/// `orderd config get`.
#[derive(Debug, Args)]
pub struct ConfigGetArgs {
    /// A version (default: the current one).
    #[arg(long, value_name = "N")]
    pub version: Option<u64>,
    /// How to reach orderd.
    #[command(flatten)]
    pub conn: Connection,
}

/// `orderd config validate|publish`.
#[derive(Debug, Args)]
pub struct ConfigFileArgs {
    /// The configuration (JSON: the configuration itself, or an object with
    /// it under "config", as `orderd config get --json` prints), or - for stdin.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Only if this is still the current version (refused with
    /// ORD-409-CONFIG_VERSION_CONFLICT otherwise).
    #[arg(long, value_name = "N")]
    pub expected_version: Option<u64>,
    /// How to reach orderd.
    #[command(flatten)]
    pub conn: Connection,
}

/// `orderd config dry-run`.
#[derive(Debug, Args)]
pub struct DryRunArgs {
    /// The configuration (as for validate), or - for stdin.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// How many of the most recent orders to replay (orderd's default 100, at most 1000).
    #[arg(long, value_name = "N")]
    pub limit: Option<u32>,
    /// How to reach orderd.
    #[command(flatten)]
    pub conn: Connection,
}

/// `orderd watch`.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// The order to watch; without it, every order of the tenant (or, with
    /// filters, those that match them).
    #[arg(value_parser = order_id)]
    pub order: Option<OrderId>,
    /// Watching a tenant: skip the opening list of its open orders and print
    /// only the changes from now on.
    #[arg(long)]
    pub changes_only: bool,
    /// Watching a tenant: only the orders these filters match (as for
    /// `orderd query`; see the rule above).
    #[command(flatten)]
    pub filters: QueryFilters,
    /// How to reach orderd.
    #[command(flatten)]
    pub conn: Connection,
}

fn nats_url(s: &str) -> Result<SecretUrl, String> {
    if s.trim().is_empty() {
        return Err("a NATS URL is required, e.g. nats://127.0.0.1:4222".to_owned());
    }
    Ok(SecretUrl::new(s))
}

fn tenant(s: &str) -> Result<TenantId, String> {
    subjects::parse_tenant(s).map_err(|e| e.to_string())
}

fn order_id(s: &str) -> Result<OrderId, String> {
    OrderId::parse(s).map_err(|e| e.to_string())
}

fn idempotency_key(s: &str) -> Result<CommandId, String> {
    CommandId::parse(s).map_err(|e| e.to_string())
}

fn instant(s: &str) -> Result<Timestamp, String> {
    wire::parse_rfc3339(s).ok_or_else(|| "not an RFC 3339 time, e.g. 2026-12-01T10:00:00Z".into())
}

fn state(s: &str) -> Result<OrderState, String> {
    let wanted = s.trim().replace('-', "_").to_ascii_uppercase();
    OrderState::ALL
        .into_iter()
        .find(|st| st.as_str() == wanted)
        .ok_or_else(|| {
            let names: Vec<&str> = OrderState::ALL.iter().map(|st| st.as_str()).collect();
            format!("not a state; one of {}", names.join(", "))
        })
}

/// `10`, `2.5`, `10s`, `500ms`, `1m`: a number of seconds, or with a unit.
pub(crate) fn duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (number, scale) = if let Some(n) = s.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else {
        (s, 1.0)
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("not a duration: {s:?} (e.g. 10, 2.5s, 500ms, 1m)"))?;
    if !value.is_finite() || value <= 0.0 {
        return Err("a duration must be positive".to_owned());
    }
    Duration::try_from_secs_f64(value * scale).map_err(|e| e.to_string())
}

fn attribute(s: &str) -> Result<(String, serde_json::Value), String> {
    let (name, value) = s
        .split_once('=')
        .ok_or_else(|| "expected NAME=VALUE".to_owned())?;
    if name.is_empty() {
        return Err("expected NAME=VALUE".to_owned());
    }
    let value =
        serde_json::from_str(value).unwrap_or_else(|_| serde_json::Value::String(value.to_owned()));
    Ok((name.to_owned(), value))
}

fn range(s: &str) -> Result<(String, wire::RangeBody), String> {
    const SHAPE: &str = "expected NAME=MIN..MAX (a bound may be left out)";
    let (name, bounds) = s.split_once('=').ok_or(SHAPE)?;
    let (min, max) = bounds.split_once("..").ok_or(SHAPE)?;
    let bound = |b: &str| -> Result<Option<f64>, String> {
        let b = b.trim();
        if b.is_empty() {
            return Ok(None);
        }
        b.parse()
            .map(Some)
            .map_err(|_| format!("{b:?} is not a number"))
    };
    if name.is_empty() {
        return Err(SHAPE.to_owned());
    }
    Ok((
        name.to_owned(),
        wire::RangeBody {
            min: bound(min)?,
            max: bound(max)?,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_definitions_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn the_default_url_is_the_services() {
        assert_eq!(
            crate::settings::Settings::default().nats.url.expose(),
            DEFAULT_NATS_URL
        );
    }

    #[test]
    fn durations() {
        assert_eq!(duration("10"), Ok(Duration::from_secs(10)));
        assert_eq!(duration("2.5s"), Ok(Duration::from_millis(2500)));
        assert_eq!(duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(duration("1m"), Ok(Duration::from_secs(60)));
        assert!(duration("0").is_err());
        assert!(duration("soon").is_err());
    }

    #[test]
    fn filters() {
        assert_eq!(state("in-progress"), Ok(OrderState::InProgress));
        assert!(state("LOST").is_err());
        assert_eq!(
            attribute("region=north"),
            Ok(("region".into(), serde_json::json!("north")))
        );
        assert_eq!(
            attribute("weight=42"),
            Ok(("weight".into(), serde_json::json!(42)))
        );
        assert_eq!(
            attribute("code=\"42\""),
            Ok(("code".into(), serde_json::json!("42")))
        );
        assert!(attribute("=x").is_err());
        let (name, r) = range("weight=10..").unwrap();
        assert_eq!((name.as_str(), r.min, r.max), ("weight", Some(10.0), None));
        let (_, r) = range("weight=..99.5").unwrap();
        assert_eq!((r.min, r.max), (None, Some(99.5)));
        assert!(range("weight=1-2").is_err());
    }

    #[test]
    fn serving_stays_the_default() {
        let cli = Cli::try_parse_from(["orderd"]).unwrap();
        assert!(cli.command.is_none() && cli.config.is_none());
        let cli = Cli::try_parse_from(["orderd", "--config", "x.toml"]).unwrap();
        assert_eq!(cli.config, Some(PathBuf::from("x.toml")));
        let cli = Cli::try_parse_from(["orderd", "serve", "-c", "y.toml"]).unwrap();
        assert!(matches!(
            cli.command,
            Some(Command::Serve(ServeArgs { config: Some(_) }))
        ));
    }

    #[test]
    fn bad_ids_are_usage_errors() {
        let err =
            Cli::try_parse_from(["orderd", "get", "not-a-uuid", "--tenant", "acme"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        let err = Cli::try_parse_from([
            "orderd",
            "get",
            "67e55044-10b1-426f-9247-bb680e5fe0c8",
            "--tenant",
            "api",
        ])
        .unwrap_err();
        assert_eq!(err.exit_code(), 2);
    }
}

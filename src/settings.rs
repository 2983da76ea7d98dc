//! Settings: one [`Settings`] struct, loaded in layers (built-in defaults <
//! `config/orderd.toml` < environment) and validated once at start-up, so a
//! bad value stops orderd before it touches NATS or Redis.
//!
//! Invariant: connection URLs are [`SecretUrl`]s; their password never reaches
//! a log line, a `Debug` print or an error message.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize, Serializer};

/// The config file used when neither `--config` nor `ORDERD_CONFIG` names one.
pub const DEFAULT_CONFIG_PATH: &str = "config/orderd.toml";

/// Why the settings could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The named config file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The config file is not valid TOML for these settings.
    #[error("config file {path} is invalid: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong, with line and column.
        source: Box<toml::de::Error>,
    },
    /// An environment variable has a value that does not parse.
    #[error("environment variable {var} is invalid: {why}")]
    Env {
        /// The variable.
        var: String,
        /// What is wrong (never the value: it may be a secret).
        why: String,
    },
    /// A value is out of its allowed range.
    #[error("setting {field} is invalid: {why}")]
    Invalid {
        /// The setting, as in the file (`consumers.max_ack_pending`).
        field: &'static str,
        /// What is wrong.
        why: String,
    },
}

/// A URL that may carry a password: `Debug` and `Display` mask it.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct SecretUrl(String);

impl SecretUrl {
    /// Wraps a URL.
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    /// The real URL, to hand to a client library and nowhere else.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with any `user:password@` part replaced by `***@` (in each
    /// of several, comma-separated).
    pub fn redacted(&self) -> String {
        self.servers()
            .into_iter()
            .map(|url| match (url.find("://"), url.rfind('@')) {
                (Some(scheme_end), Some(at)) if at > scheme_end => {
                    format!("{}***{}", &url[..scheme_end + 3], &url[at..])
                }
                _ => url.to_owned(),
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The URLs it names: several servers of one cluster are given
    /// comma-separated (`nats://a:4222,nats://b:4222`).
    pub fn servers(&self) -> Vec<&str> {
        self.0
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect()
    }
}

/// The real URL: serialized only to lay the environment over the settings
/// ([`Settings::apply_env`]) and read them back; never logged (`Debug` and
/// `Display` mask it).
impl Serialize for SecretUrl {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretUrl({})", self.redacted())
    }
}

impl fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// A secret that is not a URL (a dashboard login's token): `Debug` prints
/// `***`; serialized as it is, only to lay the environment over the
/// settings.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    /// The secret itself, to compare with and nowhere else.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Who may use the dashboard, parsed from one `http.dashboard_logins`
/// entry `TOKEN:TENANTS:ROLE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DashboardLogin {
    /// What the page sends (`Authorization: Bearer …`).
    pub token: Secret,
    /// The tenants it may read; `None`: every tenant (`*`).
    pub tenants: Option<Vec<String>>,
    /// May send hold, resume and cancel (role `operator`), or only read
    /// (`viewer`).
    pub operator: bool,
}

impl DashboardLogin {
    /// Parses `TOKEN:TENANTS:ROLE`: tenants separated by `|` or `*`, role
    /// `viewer` or `operator`; the token at least 16 characters.
    pub fn parse(entry: &str) -> Result<Self, String> {
        let mut parts = entry.splitn(3, ':');
        let (Some(token), Some(tenants), Some(role)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err("each login is TOKEN:TENANTS:ROLE".into());
        };
        if token.len() < 16 {
            return Err("a login's token must be at least 16 characters".into());
        }
        let operator = match role {
            "operator" => true,
            "viewer" => false,
            _ => return Err("a login's role is viewer or operator".into()),
        };
        let tenants = match tenants {
            "*" => None,
            list => {
                let tenants: Vec<String> = list.split('|').map(str::to_owned).collect();
                let valid = |t: &str| {
                    (1..=64).contains(&t.len())
                        && t.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
                };
                if !tenants.iter().all(|t| valid(t)) {
                    return Err("a login names a tenant that is not a valid tenant id".into());
                }
                Some(tenants)
            }
        };
        Ok(Self {
            token: Secret::new(token),
            tenants,
            operator,
        })
    }

    /// Whether it may read `tenant`.
    pub fn may_read(&self, tenant: &str) -> bool {
        self.tenants
            .as_ref()
            .is_none_or(|ts| ts.iter().any(|t| t == tenant))
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    #[serde(alias = "TEXT", alias = "Text")]
    Text,
    /// One JSON object per line.
    #[serde(alias = "JSON", alias = "Json")]
    Json,
}

/// Everything orderd can be configured with.
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// The NATS connection and its JetStream streams.
    pub nats: NatsSettings,
    /// The Redis connection.
    pub redis: RedisSettings,
    /// The durable pull consumers that feed the order actors.
    pub consumers: ConsumerSettings,
    /// Order actors and command handling.
    pub runtime: RuntimeSettings,
    /// Several instances: which one pulls which tenant's lanes.
    pub ownership: OwnershipSettings,
    /// Logging.
    pub log: LogSettings,
    /// The HTTP listener: health probes, metrics, the dashboard.
    pub http: HttpSettings,
    /// Traces exported to an OpenTelemetry collector.
    pub trace: TraceSettings,
    /// An order's end of life: the archive of closed orders past their
    /// tenant's retention.
    pub archive: ArchiveSettings,
}

/// NATS and JetStream.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct NatsSettings {
    /// Server URL, e.g. `nats://user:pass@127.0.0.1:4222`.
    pub url: SecretUrl,
    /// Give up connecting at start-up after this long.
    pub connect_timeout_ms: u64,
    /// Create (or update) the six streams at start-up. Off when operators
    /// manage streams themselves.
    pub auto_create_streams: bool,
    /// JetStream's `Nats-Msg-Id` duplicate window, in seconds.
    pub duplicate_window_secs: u64,
    /// How long commands, job updates and job commands are kept, in hours.
    pub work_max_age_hours: u64,
    /// Bytes the commands, job updates and job commands streams may each
    /// hold (-1: no limit); past it the oldest go.
    pub work_max_bytes: i64,
    /// How long events are kept (the history endpoint reads them), in days.
    pub events_max_age_days: u64,
    /// Bytes the events and dead-letter streams may each hold (-1: no limit).
    pub events_max_bytes: i64,
    /// Copies JetStream keeps of each stream and key-value bucket orderd
    /// creates: 1 on a single server, 3 on a three-node cluster (a stored
    /// message then survives the loss of any one node).
    pub replicas: usize,
    /// The largest message a stream accepts, in bytes.
    pub max_msg_bytes: i32,
    /// Durable consumer names share this prefix (`orderd-cmd_<tenant>`,
    /// `orderd-job_<tenant>`, `orderd-cmd-discovery`, `orderd-job-discovery`).
    pub consumer_prefix: String,
    /// Refuse a connection that is not TLS.
    pub tls_required: bool,
    /// PEM file of the certificate authorities to trust for the server's
    /// certificate (besides the system's); empty: the system's only.
    pub tls_ca_file: String,
    /// PEM file of this client's certificate, when the server asks for one
    /// (with [`NatsSettings::tls_key_file`]).
    pub tls_cert_file: String,
    /// PEM file of this client's private key.
    pub tls_key_file: String,
    /// A `.creds` file (a user JWT and its nkey seed), for servers that use
    /// decentralised authentication.
    pub credentials_file: String,
    /// A file holding an nkey seed (`SU…`), for servers that authenticate
    /// users by nkey.
    pub nkey_seed_file: String,
}

impl NatsSettings {
    /// How to connect as these settings say: TLS, certificates, the
    /// credentials or nkey; the files are read here. An error names the
    /// setting and the file, never what it holds.
    pub fn connect_options(&self) -> Result<async_nats::ConnectOptions, String> {
        let read = |field: &str, path: &str| {
            std::fs::read_to_string(path)
                .map_err(|e| format!("nats.{field}: cannot read {path}: {e}"))
        };
        let mut options = async_nats::ConnectOptions::new();
        if !self.credentials_file.is_empty() {
            let creds = read("credentials_file", &self.credentials_file)?;
            options = options
                .credentials(&creds)
                .map_err(|e| format!("nats.credentials_file: {}: {e}", self.credentials_file))?;
        }
        if !self.nkey_seed_file.is_empty() {
            let seed = read("nkey_seed_file", &self.nkey_seed_file)?;
            options = options.nkey(seed.trim().to_owned());
        }
        if !self.tls_ca_file.is_empty() {
            options = options.add_root_certificates(self.tls_ca_file.clone().into());
        }
        if !self.tls_cert_file.is_empty() {
            options = options.add_client_certificate(
                self.tls_cert_file.clone().into(),
                self.tls_key_file.clone().into(),
            );
        }
        let tls = self.tls_required
            || !self.tls_ca_file.is_empty()
            || !self.tls_cert_file.is_empty()
            || self.url.servers().iter().any(|u| u.starts_with("tls://"));
        Ok(options.require_tls(tls))
    }
}

impl Default for NatsSettings {
    fn default() -> Self {
        Self {
            url: SecretUrl::new("nats://127.0.0.1:4222"),
            connect_timeout_ms: 5_000,
            auto_create_streams: true,
            duplicate_window_secs: 120,
            work_max_age_hours: 24 * 7,
            work_max_bytes: -1,
            events_max_age_days: 30,
            events_max_bytes: -1,
            replicas: 1,
            max_msg_bytes: 1024 * 1024,
            consumer_prefix: "orderd".into(),
            tls_required: false,
            tls_ca_file: String::new(),
            tls_cert_file: String::new(),
            tls_key_file: String::new(),
            credentials_file: String::new(),
            nkey_seed_file: String::new(),
        }
    }
}

/// Redis.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisSettings {
    /// Server URL, e.g. `redis://:pass@127.0.0.1:6379/0`.
    pub url: SecretUrl,
    /// A Redis call that takes longer than this fails (and the command is retried).
    pub response_timeout_ms: u64,
    /// Refuse to start when Redis runs without `appendonly yes`.
    pub require_appendonly: bool,
    /// Redis Sentinel nodes (`host:port` each): when given, orderd asks
    /// them for the primary of [`RedisSettings::master_name`] and follows a
    /// failover; `url` then gives only the credentials and database.
    pub sentinels: Vec<String>,
    /// The name the sentinels monitor the primary under.
    pub master_name: String,
    /// After each snapshot write, wait until this many replicas have it
    /// (Redis `WAIT`) before the command is acknowledged; fewer in time
    /// fails the write, and the command is redelivered. 0: do not wait.
    pub wait_replicas: u32,
    /// How long a write waits for [`RedisSettings::wait_replicas`].
    pub wait_timeout_ms: u64,
    /// With a `rediss://` URL: PEM file of the authorities that signed the
    /// server's certificate (besides the system's).
    pub tls_ca_file: String,
    /// PEM file of orderd's client certificate, when Redis verifies clients
    /// (`tls-auth-clients yes`, its default).
    pub tls_cert_file: String,
    /// PEM file of its private key.
    pub tls_key_file: String,
}

impl Default for RedisSettings {
    fn default() -> Self {
        Self {
            url: SecretUrl::new("redis://127.0.0.1:6379"),
            response_timeout_ms: 2_000,
            require_appendonly: true,
            sentinels: Vec::new(),
            master_name: "orderd".into(),
            wait_replicas: 0,
            wait_timeout_ms: 1_000,
            tls_ca_file: String::new(),
            tls_cert_file: String::new(),
            tls_key_file: String::new(),
        }
    }
}

/// The durable pull consumers.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsumerSettings {
    /// Unacknowledged messages a tenant's lane may have out at once.
    pub max_ack_pending: i64,
    /// Seconds before an unacknowledged message is redelivered.
    pub ack_wait_secs: u64,
    /// Deliveries of one message before the server gives up on it.
    pub max_deliver: i64,
    /// Delays before a message refused for a passing reason is redelivered,
    /// by delivery count; the last one repeats.
    pub nak_backoff_ms: Vec<u64>,
}

impl Default for ConsumerSettings {
    fn default() -> Self {
        Self {
            max_ack_pending: 1024,
            ack_wait_secs: 30,
            max_deliver: 20,
            nak_backoff_ms: vec![100, 500, 2_000, 5_000],
        }
    }
}

/// Order actors and command handling.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuntimeSettings {
    /// Commands being handled at once, per tenant lane.
    pub max_in_flight: usize,
    /// An order actor idle this long stops (its state stays in Redis).
    pub passivate_after_ms: u64,
    /// The largest command body accepted, in bytes.
    pub max_body_bytes: usize,
    /// How long a tenant configuration read from Redis is reused.
    pub tenant_config_ttl_ms: u64,
    /// How often due timers of stopped orders are looked for.
    pub timer_sweep_ms: u64,
    /// At most this many orders a second are woken for due timers (a
    /// backlog after downtime is worked off at this rate).
    pub timer_fire_per_sec: u32,
    /// How long shutdown waits for in-flight commands.
    pub shutdown_grace_ms: u64,
}

impl Default for RuntimeSettings {
    fn default() -> Self {
        Self {
            max_in_flight: 512,
            passivate_after_ms: 60_000,
            max_body_bytes: 256 * 1024,
            tenant_config_ttl_ms: 5_000,
            timer_sweep_ms: 1_000,
            timer_fire_per_sec: 500,
            shutdown_grace_ms: 10_000,
        }
    }
}

/// The archive: where closed orders go once their tenant's retention
/// (`retentionMs` in its configuration) has passed.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ArchiveSettings {
    /// How long the archive stream keeps an archived order, in days (also
    /// how long its tombstone in Redis refuses commands).
    pub max_age_days: u64,
    /// Bytes the archive stream may hold (-1: no limit).
    pub max_bytes: i64,
    /// How often each tenant's owner looks for closed orders past their
    /// retention (ms).
    pub sweep_every_ms: u64,
    /// At most this many orders a second are archived per instance (a
    /// backlog, as when a retention is first set, is worked off at this
    /// rate).
    pub per_sec: u32,
}

impl Default for ArchiveSettings {
    fn default() -> Self {
        Self {
            max_age_days: 365,
            max_bytes: -1,
            sweep_every_ms: 60_000,
            per_sec: 200,
        }
    }
}

/// The most partitions a tenant's orders can be spread over
/// (`ownership.partitions`).
pub const MAX_PARTITIONS: u16 = 64;

/// Several instances on one NATS and Redis: each tenant's lanes are pulled
/// by one instance at a time, its owner, which holds a lease in NATS KV.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct OwnershipSettings {
    /// This instance's name, shown to operators beside its id (empty: the
    /// host name).
    pub instance_name: String,
    /// How long an owner's lease lasts without renewal. An owner that could
    /// not renew for two thirds of it stops pulling; another instance takes over
    /// once it has expired, so a killed instance's tenants move within
    /// about this long.
    pub lease_ms: u64,
    /// How many partitions each tenant's orders are spread over (by a hash
    /// of the order id). Each partition has its own lanes and owner, so a
    /// busy tenant's work spreads over the instances; 1 keeps a tenant whole.
    /// Every instance must run with the same value: orderd refuses to start
    /// against streams set up for another (changing it is a drain, see
    /// docs/runtime.md).
    pub partitions: u16,
}

impl Default for OwnershipSettings {
    fn default() -> Self {
        Self {
            instance_name: String::new(),
            lease_ms: 3_000,
            partitions: 1,
        }
    }
}

/// The HTTP listener.
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct HttpSettings {
    /// The address to listen on, `host:port` (`0.0.0.0:8080`); empty: no
    /// HTTP listener.
    pub listen: String,
    /// Who may use the dashboard at `/dashboard`: `TOKEN:TENANTS:ROLE`
    /// each (`s3cret-token-0123:acme|globex:operator`, `…:*:viewer`);
    /// none: the page answers every request 401.
    pub dashboard_logins: Vec<Secret>,
}

impl HttpSettings {
    /// The dashboard logins, parsed (validated at load).
    pub fn logins(&self) -> Vec<DashboardLogin> {
        self.dashboard_logins
            .iter()
            .filter_map(|l| DashboardLogin::parse(l.expose()).ok())
            .collect()
    }

    /// The address to listen on, if any (validated at load).
    pub fn listen_addr(&self) -> Option<std::net::SocketAddr> {
        self.listen.parse().ok()
    }
}

/// Traces exported to an OpenTelemetry collector.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TraceSettings {
    /// The collector's OTLP/HTTP traces endpoint
    /// (`http://collector:4318/v1/traces`); empty: no export.
    pub otlp_endpoint: String,
    /// The `service.name` orderd's spans carry.
    pub service_name: String,
}

impl Default for TraceSettings {
    fn default() -> Self {
        Self {
            otlp_endpoint: String::new(),
            service_name: "orderd".into(),
        }
    }
}

/// Logging.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    /// `text` or `json`.
    pub format: LogFormat,
    /// A tracing filter (`info`, `orderd=debug,async_nats=warn`); `RUST_LOG` wins.
    pub filter: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            filter: "info".into(),
        }
    }
}

impl Settings {
    /// Loads the settings: the file (`path`, else `ORDERD_CONFIG`, else
    /// [`DEFAULT_CONFIG_PATH`] when it exists, else built-in defaults), then
    /// the environment, then validates them.
    pub fn load(path: Option<&Path>) -> Result<Self, SettingsError> {
        Self::load_with(path, |var| std::env::var(var).ok())
    }

    /// [`Settings::load`] with the environment given as a lookup function.
    pub fn load_with(
        path: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, SettingsError> {
        let named = path
            .map(Path::to_path_buf)
            .or_else(|| env("ORDERD_CONFIG").map(PathBuf::from));
        let mut settings = match named {
            Some(path) => Self::from_file(&path)?,
            None => {
                let default = Path::new(DEFAULT_CONFIG_PATH);
                if default.exists() {
                    Self::from_file(default)?
                } else {
                    Self::default()
                }
            }
        };
        settings.apply_env(env)?;
        settings.validate()?;
        Ok(settings)
    }

    /// Parses a TOML document.
    pub fn from_toml(text: &str, path: &Path) -> Result<Self, SettingsError> {
        toml::from_str(text).map_err(|e| SettingsError::Parse {
            path: path.to_path_buf(),
            source: Box::new(e),
        })
    }

    fn from_file(path: &Path) -> Result<Self, SettingsError> {
        let text = std::fs::read_to_string(path).map_err(|source| SettingsError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml(&text, path)
    }

    /// Every setting as `(section, key)`, in the order the file lists them
    /// (what `config/orderd.example.toml` documents).
    pub fn keys() -> Vec<(String, String)> {
        let Ok(toml::Value::Table(sections)) = toml::Value::try_from(Settings::default()) else {
            return Vec::new();
        };
        sections
            .into_iter()
            .flat_map(|(section, table)| {
                let keys: Vec<String> = match table {
                    toml::Value::Table(t) => t.into_iter().map(|(k, _)| k).collect(),
                    _ => Vec::new(),
                };
                keys.into_iter().map(move |k| (section.clone(), k))
            })
            .collect()
    }

    /// The environment variable of the setting `section.key`:
    /// `ORDERD_<SECTION>_<KEY>` (`nats.url` → `ORDERD_NATS_URL`).
    pub fn env_var(section: &str, key: &str) -> String {
        format!("ORDERD_{section}_{key}").to_ascii_uppercase()
    }

    /// Applies the environment: first the short names kept from before
    /// (`ORDERD_MAX_BODY`, `ORDERD_LEASE_MS`, …), then every setting's
    /// [`Settings::env_var`], which wins over its short name.
    pub fn apply_env(&mut self, env: impl Fn(&str) -> Option<String>) -> Result<(), SettingsError> {
        self.apply_short_env(&env)?;
        self.apply_every_env(&env)
    }

    /// Every setting from its `ORDERD_<SECTION>_<KEY>`, parsed as the type
    /// the setting has: a number, `true`/`false`, text, or a
    /// comma-separated list.
    fn apply_every_env(
        &mut self,
        env: &impl Fn(&str) -> Option<String>,
    ) -> Result<(), SettingsError> {
        let unreadable = |why: String| SettingsError::Env {
            var: "ORDERD_*".into(),
            why,
        };
        let mut value = toml::Value::try_from(&*self).map_err(|e| unreadable(e.to_string()))?;
        let mut changed = Vec::new();
        if let toml::Value::Table(sections) = &mut value {
            for (section, table) in sections.iter_mut() {
                let toml::Value::Table(table) = table else {
                    continue;
                };
                for (key, current) in table.iter_mut() {
                    let var = Self::env_var(section, key);
                    if let Some(raw) = env(&var) {
                        *current = env_value(current, &raw).map_err(|why| SettingsError::Env {
                            var: var.clone(),
                            why,
                        })?;
                        changed.push(var);
                    }
                }
            }
        }
        if changed.is_empty() {
            return Ok(());
        }
        // A value of the right type may still not fit (an unknown log
        // format): say which variables, never the value.
        *self = value
            .try_into()
            .map_err(|e: toml::de::Error| SettingsError::Env {
                var: changed.join(" or "),
                why: e.message().to_owned(),
            })?;
        Ok(())
    }

    /// The short names, kept so existing deployments keep working.
    fn apply_short_env(
        &mut self,
        env: &impl Fn(&str) -> Option<String>,
    ) -> Result<(), SettingsError> {
        if let Some(v) = env("ORDERD_NATS_URL") {
            self.nats.url = SecretUrl::new(v);
        }
        if let Some(v) = env("ORDERD_REDIS_URL") {
            self.redis.url = SecretUrl::new(v);
        }
        if let Some(v) = env("ORDERD_LOG_FORMAT") {
            self.log.format = match v.to_ascii_lowercase().as_str() {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                _ => {
                    return Err(SettingsError::Env {
                        var: "ORDERD_LOG_FORMAT".into(),
                        why: "expected text or json".into(),
                    })
                }
            };
        }
        parse_env(env, "ORDERD_MAX_BODY", &mut self.runtime.max_body_bytes)?;
        if let Some(v) = env("ORDERD_INSTANCE_NAME") {
            self.ownership.instance_name = v;
        }
        parse_env(env, "ORDERD_LEASE_MS", &mut self.ownership.lease_ms)?;
        if let Some(v) = env("ORDERD_HTTP_LISTEN") {
            self.http.listen = v;
        }
        parse_env(env, "ORDERD_MAX_IN_FLIGHT", &mut self.runtime.max_in_flight)?;
        parse_env(
            env,
            "ORDERD_PASSIVATE_AFTER_MS",
            &mut self.runtime.passivate_after_ms,
        )?;
        parse_env(
            env,
            "ORDERD_MAX_ACK_PENDING",
            &mut self.consumers.max_ack_pending,
        )?;
        parse_env(
            env,
            "ORDERD_ACK_WAIT_SECS",
            &mut self.consumers.ack_wait_secs,
        )?;
        parse_env(env, "ORDERD_MAX_DELIVER", &mut self.consumers.max_deliver)?;
        parse_env(
            env,
            "ORDERD_TIMER_FIRE_PER_SEC",
            &mut self.runtime.timer_fire_per_sec,
        )?;
        parse_env(
            env,
            "ORDERD_TIMER_SWEEP_MS",
            &mut self.runtime.timer_sweep_ms,
        )?;
        parse_env(
            env,
            "ORDERD_AUTO_CREATE_STREAMS",
            &mut self.nats.auto_create_streams,
        )?;
        parse_env(
            env,
            "ORDERD_DUPLICATE_WINDOW_SECS",
            &mut self.nats.duplicate_window_secs,
        )?;
        Ok(())
    }

    /// Checks every value against its range.
    pub fn validate(&self) -> Result<(), SettingsError> {
        fn check(ok: bool, field: &'static str, why: &str) -> Result<(), SettingsError> {
            if ok {
                Ok(())
            } else {
                Err(SettingsError::Invalid {
                    field,
                    why: why.into(),
                })
            }
        }
        let servers = self.nats.url.servers();
        check(
            !servers.is_empty()
                && servers
                    .iter()
                    .all(|u| u.starts_with("nats://") || u.starts_with("tls://")),
            "nats.url",
            "must be one or more (comma-separated) URLs starting with nats:// or tls://",
        )?;
        check(
            self.redis.sentinels.iter().all(|s| {
                s.rsplit_once(':')
                    .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
            }),
            "redis.sentinels",
            "each must be host:port",
        )?;
        check(
            self.nats.tls_cert_file.is_empty() == self.nats.tls_key_file.is_empty(),
            "nats.tls_cert_file",
            "a client certificate needs its key (nats.tls_key_file), and the other way round",
        )?;
        check(
            self.nats.credentials_file.is_empty() || self.nats.nkey_seed_file.is_empty(),
            "nats.nkey_seed_file",
            "give a credentials file or an nkey seed, not both",
        )?;
        check(
            self.redis.tls_cert_file.is_empty() == self.redis.tls_key_file.is_empty(),
            "redis.tls_cert_file",
            "a client certificate needs its key (redis.tls_key_file), and the other way round",
        )?;
        check(
            (self.redis.tls_ca_file.is_empty() && self.redis.tls_cert_file.is_empty())
                || self.redis.url.expose().starts_with("rediss://"),
            "redis.url",
            "must start with rediss:// when redis.tls_ca_file or redis.tls_cert_file is set",
        )?;
        check(
            !self.redis.master_name.trim().is_empty(),
            "redis.master_name",
            "must not be empty",
        )?;
        check(
            self.redis.wait_replicas == 0
                || (10..self.redis.response_timeout_ms).contains(&self.redis.wait_timeout_ms),
            "redis.wait_timeout_ms",
            "must be at least 10 and below redis.response_timeout_ms when redis.wait_replicas is set",
        )?;
        check(
            (1..=5).contains(&self.nats.replicas),
            "nats.replicas",
            "must be between 1 and 5 (3 on a three-node cluster)",
        )?;
        check(
            self.nats.work_max_bytes == -1 || self.nats.work_max_bytes > 0,
            "nats.work_max_bytes",
            "must be -1 (no limit) or a number of bytes",
        )?;
        check(
            self.nats.events_max_bytes == -1 || self.nats.events_max_bytes > 0,
            "nats.events_max_bytes",
            "must be -1 (no limit) or a number of bytes",
        )?;
        check(
            self.redis.url.expose().starts_with("redis://")
                || self.redis.url.expose().starts_with("rediss://"),
            "redis.url",
            "must start with redis:// or rediss://",
        )?;
        check(
            self.http.listen.is_empty() || self.http.listen_addr().is_some(),
            "http.listen",
            "must be empty (no listener) or an address such as 0.0.0.0:8080",
        )?;
        for login in &self.http.dashboard_logins {
            if let Err(why) = DashboardLogin::parse(login.expose()) {
                return Err(SettingsError::Invalid {
                    field: "http.dashboard_logins",
                    why,
                });
            }
        }
        check(
            self.trace.otlp_endpoint.is_empty() || self.trace.otlp_endpoint.starts_with("http://"),
            "trace.otlp_endpoint",
            "must be empty (no export) or an http:// URL such as http://collector:4318/v1/traces",
        )?;
        check(
            !self.trace.service_name.trim().is_empty(),
            "trace.service_name",
            "must not be empty",
        )?;
        check(
            (100..=86_400_000).contains(&self.archive.sweep_every_ms),
            "archive.sweep_every_ms",
            "must be between 100 and 86400000",
        )?;
        check(
            self.archive.per_sec >= 1,
            "archive.per_sec",
            "must be at least 1",
        )?;
        check(
            self.archive.max_age_days >= 1,
            "archive.max_age_days",
            "must be at least 1",
        )?;
        check(
            (500..=60_000).contains(&self.ownership.lease_ms),
            "ownership.lease_ms",
            "must be between 500 and 60000",
        )?;
        check(
            (1..=MAX_PARTITIONS).contains(&self.ownership.partitions),
            "ownership.partitions",
            "must be between 1 and 64",
        )?;
        check(
            self.nats.duplicate_window_secs >= 1,
            "nats.duplicate_window_secs",
            "must be at least 1",
        )?;
        check(
            self.nats.max_msg_bytes >= 1024,
            "nats.max_msg_bytes",
            "must be at least 1024",
        )?;
        check(
            !self.nats.consumer_prefix.is_empty()
                && self
                    .nats
                    .consumer_prefix
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "nats.consumer_prefix",
            "must be 1 or more of [A-Za-z0-9_-]",
        )?;
        check(
            (1..=1_000_000).contains(&self.consumers.max_ack_pending),
            "consumers.max_ack_pending",
            "must be between 1 and 1000000",
        )?;
        check(
            (1..=3_600).contains(&self.consumers.ack_wait_secs),
            "consumers.ack_wait_secs",
            "must be between 1 and 3600",
        )?;
        check(
            self.consumers.max_deliver == -1 || self.consumers.max_deliver >= 2,
            "consumers.max_deliver",
            "must be -1 (unlimited) or at least 2",
        )?;
        check(
            !self.consumers.nak_backoff_ms.is_empty(),
            "consumers.nak_backoff_ms",
            "needs at least one delay",
        )?;
        check(
            (1..=100_000).contains(&self.runtime.max_in_flight),
            "runtime.max_in_flight",
            "must be between 1 and 100000",
        )?;
        check(
            self.runtime.passivate_after_ms >= 100,
            "runtime.passivate_after_ms",
            "must be at least 100",
        )?;
        check(
            (64..=usize::try_from(self.nats.max_msg_bytes).unwrap_or(usize::MAX))
                .contains(&self.runtime.max_body_bytes),
            "runtime.max_body_bytes",
            "must be between 64 and nats.max_msg_bytes",
        )?;
        check(
            self.runtime.timer_sweep_ms >= 10,
            "runtime.timer_sweep_ms",
            "must be at least 10",
        )?;
        check(
            self.runtime.timer_fire_per_sec >= 1,
            "runtime.timer_fire_per_sec",
            "must be at least 1",
        )?;
        Ok(())
    }

    /// The consumers' ack wait.
    pub fn ack_wait(&self) -> Duration {
        Duration::from_secs(self.consumers.ack_wait_secs)
    }

    /// The delay before redelivering a message refused for a passing reason,
    /// after `delivered` deliveries.
    pub fn nak_delay(&self, delivered: i64) -> Duration {
        let backoff = &self.consumers.nak_backoff_ms;
        let i = usize::try_from(delivered.saturating_sub(1))
            .unwrap_or(0)
            .min(backoff.len().saturating_sub(1));
        Duration::from_millis(backoff.get(i).copied().unwrap_or(1_000))
    }
}

/// `raw` from the environment as a value of `current`'s type.
fn env_value(current: &toml::Value, raw: &str) -> Result<toml::Value, String> {
    use toml::Value;
    let trimmed = raw.trim();
    Ok(match current {
        Value::String(_) => Value::String(raw.to_owned()),
        Value::Integer(_) => Value::Integer(
            trimmed
                .parse()
                .map_err(|_| "expected a whole number".to_owned())?,
        ),
        Value::Float(_) => Value::Float(
            trimmed
                .parse()
                .map_err(|_| "expected a number".to_owned())?,
        ),
        Value::Boolean(_) => Value::Boolean(match trimmed.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => true,
            "false" | "0" | "no" | "off" => false,
            _ => return Err("expected true or false".into()),
        }),
        Value::Array(items) => {
            let like = items
                .first()
                .cloned()
                .unwrap_or_else(|| Value::String(String::new()));
            let items = trimmed
                .split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(|item| env_value(&like, item))
                .collect::<Result<Vec<_>, _>>()?;
            Value::Array(items)
        }
        Value::Datetime(_) | Value::Table(_) => {
            return Err("cannot be set from the environment".into())
        }
    })
}

/// Parses the short variable `var` into `into` when it is set.
fn parse_env<T: std::str::FromStr>(
    env: &impl Fn(&str) -> Option<String>,
    var: &'static str,
    into: &mut T,
) -> Result<(), SettingsError> {
    if let Some(v) = env(var) {
        *into = v.trim().parse().map_err(|_| SettingsError::Env {
            var: var.to_owned(),
            why: format!("expected a {}", std::any::type_name::<T>()),
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn shipped_config_files_parse_and_validate() {
        for file in ["config/orderd.toml", "config/orderd.example.toml"] {
            let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
            let s = Settings::load_with(Some(&path), env(&[])).unwrap();
            assert!(s.consumers.max_ack_pending > 0, "{file}");
        }
    }

    #[test]
    fn environment_overrides_the_file() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/orderd.toml");
        let s = Settings::load_with(
            Some(&path),
            env(&[
                ("ORDERD_NATS_URL", "nats://u:secret@h:4333"),
                ("ORDERD_REDIS_URL", "redis://:pw@h:6380"),
                ("ORDERD_LOG_FORMAT", "JSON"),
                ("ORDERD_MAX_BODY", "1000"),
                ("ORDERD_MAX_ACK_PENDING", "7"),
                ("ORDERD_AUTO_CREATE_STREAMS", "false"),
            ]),
        )
        .unwrap();
        assert_eq!(s.nats.url.expose(), "nats://u:secret@h:4333");
        assert_eq!(s.log.format, LogFormat::Json);
        assert_eq!(s.runtime.max_body_bytes, 1000);
        assert_eq!(s.consumers.max_ack_pending, 7);
        assert!(!s.nats.auto_create_streams);
    }

    #[test]
    fn secrets_never_print() {
        let s = Settings::load_with(
            Some(&Path::new(env!("CARGO_MANIFEST_DIR")).join("config/orderd.toml")),
            env(&[
                ("ORDERD_NATS_URL", "nats://u:secret@h:4333"),
                ("ORDERD_REDIS_URL", "redis://:hunter2@h:6380"),
                (
                    "ORDERD_HTTP_DASHBOARD_LOGINS",
                    "opensesame-0123456789:acme|globex:operator, viewer-only-0123456789:*:viewer",
                ),
            ]),
        )
        .unwrap();
        let printed = format!("{s:?} {} {} {:?}", s.nats.url, s.redis.url, s.http.logins());
        assert!(!printed.contains("secret"), "{printed}");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(!printed.contains("opensesame"), "{printed}");
        let logins = s.http.logins();
        assert_eq!(logins.len(), 2);
        assert!(logins[0].operator && logins[0].may_read("globex") && !logins[0].may_read("other"));
        assert!(!logins[1].operator && logins[1].may_read("anyone"));
        for bad in [
            "short:acme:viewer",
            "long-enough-token-0123:acme:admin",
            "long-enough-token-0123:bad tenant:viewer",
            "no-colons-at-all-0123456",
        ] {
            let e = Settings::load_with(None, env(&[("ORDERD_HTTP_DASHBOARD_LOGINS", bad)]))
                .unwrap_err()
                .to_string();
            assert!(e.contains("http.dashboard_logins"), "{bad}: {e}");
            assert!(!e.contains("0123"), "the token is not printed: {e}");
        }
        assert!(printed.contains("nats://***@h:4333"), "{printed}");
    }

    #[test]
    fn bad_values_are_refused_with_the_field_named() {
        let e = Settings::load_with(None, env(&[("ORDERD_MAX_ACK_PENDING", "0")])).unwrap_err();
        assert!(e.to_string().contains("consumers.max_ack_pending"), "{e}");
        let e = Settings::load_with(None, env(&[("ORDERD_MAX_BODY", "lots")])).unwrap_err();
        assert!(e.to_string().contains("ORDERD_MAX_BODY"), "{e}");
        let e = Settings::load_with(None, env(&[("ORDERD_LOG_FORMAT", "xml")])).unwrap_err();
        assert!(e.to_string().contains("ORDERD_LOG_FORMAT"), "{e}");
        let e =
            Settings::load_with(None, env(&[("ORDERD_REDIS_URL", "http://x:pw@h")])).unwrap_err();
        assert!(e.to_string().contains("redis.url") && !e.to_string().contains("pw"));
        let e =
            Settings::from_toml("[runtime]\nmax_in_flihgt = 3\n", Path::new("x.toml")).unwrap_err();
        assert!(e.to_string().contains("max_in_flihgt"), "{e}");
    }

    #[test]
    fn nak_delay_follows_the_backoff_then_repeats_the_last() {
        let s = Settings::default();
        assert_eq!(s.nak_delay(1), Duration::from_millis(100));
        assert_eq!(s.nak_delay(2), Duration::from_millis(500));
        assert_eq!(s.nak_delay(99), Duration::from_millis(5_000));
        assert_eq!(s.nak_delay(0), Duration::from_millis(100));
    }

    /// A value of `current`'s type that differs from it, as the
    /// environment would give it.
    fn another(section: &str, key: &str, current: &toml::Value) -> (String, toml::Value) {
        use toml::Value;
        match current {
            _ if (section, key) == ("log", "format") => {
                ("json".into(), Value::String("json".into()))
            }
            Value::String(v) => (format!("{v}x"), Value::String(format!("{v}x"))),
            Value::Integer(v) => ((v + 1).to_string(), Value::Integer(v + 1)),
            Value::Boolean(v) => ((!v).to_string(), Value::Boolean(!v)),
            Value::Array(items) if items.is_empty() => (
                "a, b".into(),
                Value::Array(vec![Value::String("a".into()), Value::String("b".into())]),
            ),
            Value::Array(_) => (
                "7, 8".into(),
                Value::Array(vec![Value::Integer(7), Value::Integer(8)]),
            ),
            other => panic!("{section}.{key}: no environment form for {other:?}"),
        }
    }

    #[test]
    fn every_setting_has_its_environment_variable() {
        let defaults = toml::Value::try_from(Settings::default()).unwrap();
        let keys = Settings::keys();
        assert!(keys.len() > 20, "{keys:?}");
        for (section, key) in keys {
            let current = &defaults[section.as_str()][key.as_str()];
            let (raw, expected) = another(&section, &key, current);
            let var = Settings::env_var(&section, &key);
            let mut s = Settings::default();
            s.apply_env(|v| (v == var).then(|| raw.clone())).unwrap();
            let now = toml::Value::try_from(&s).unwrap();
            assert_eq!(now[section.as_str()][key.as_str()], expected, "{var}");
        }
    }

    #[test]
    fn the_long_name_wins_and_a_bad_value_names_its_variable_only() {
        let s = Settings::load_with(
            None,
            env(&[
                ("ORDERD_LEASE_MS", "4000"),
                ("ORDERD_OWNERSHIP_LEASE_MS", "5000"),
            ]),
        )
        .unwrap();
        assert_eq!(s.ownership.lease_ms, 5000);
        let e = Settings::load_with(None, env(&[("ORDERD_REDIS_RESPONSE_TIMEOUT_MS", "s3cret")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("ORDERD_REDIS_RESPONSE_TIMEOUT_MS"), "{e}");
        assert!(!e.contains("s3cret"), "{e}");
        let e = Settings::load_with(None, env(&[("ORDERD_LOG_FORMAT", "yaml")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("ORDERD_LOG_FORMAT"), "{e}");
        let s = Settings::load_with(
            None,
            env(&[("ORDERD_CONSUMERS_NAK_BACKOFF_MS", " 100, 200 ,")]),
        )
        .unwrap();
        assert_eq!(s.consumers.nak_backoff_ms, [100, 200]);
    }

    #[test]
    fn the_readme_and_the_example_file_name_every_setting() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
        let example: toml::Value = toml::from_str(
            &std::fs::read_to_string(root.join("config/orderd.example.toml")).unwrap(),
        )
        .unwrap();
        let defaults = toml::Value::try_from(Settings::default()).unwrap();
        let keys = Settings::keys();
        for (section, key) in &keys {
            let var = Settings::env_var(section, key);
            let row = readme
                .lines()
                .find(|l| l.starts_with(&format!("| `{section}.{key}` |")))
                .unwrap_or_else(|| panic!("README lacks a row for {section}.{key}"));
            assert!(row.contains(&format!("`{var}`")), "README lacks {var}");
            let default = match &defaults[section.as_str()][key.as_str()] {
                toml::Value::String(v) if v.is_empty() => None,
                toml::Value::Array(items) if items.is_empty() => None,
                toml::Value::String(v) => Some(v.clone()),
                toml::Value::Array(items) => Some(
                    items
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(","),
                ),
                other => Some(other.to_string()),
            };
            if let Some(default) = default {
                assert!(
                    row.contains(&format!("| `{default}` |")),
                    "README's default for {section}.{key} is not `{default}`: {row}"
                );
            }
            assert!(
                example.get(section).and_then(|t| t.get(key)).is_some(),
                "config/orderd.example.toml lacks {section}.{key}"
            );
        }
        // And nothing more: a key the example documents is a setting (an
        // optional field would be missing from `keys`, and from the
        // environment).
        for (section, table) in example.as_table().unwrap() {
            for key in table.as_table().unwrap().keys() {
                assert!(
                    keys.contains(&(section.clone(), key.clone())),
                    "{section}.{key} is not a setting"
                );
            }
        }
    }
}

//! The live dashboard: one page (`dashboard.html`, plain HTML, CSS and
//! JavaScript with nothing to build or fetch), served at `/dashboard`, and
//! the few routes it talks to. They are a thin door to the same NATS
//! subjects every client uses, so the page shows what NATS answers:
//! - `POST /dashboard/api/read/{get|explain|query|history|counts}`: the body
//!   goes to `orderd.v1.api.<endpoint>` as it is; the answer comes back as
//!   it is, with the HTTP status of its error code;
//! - `POST /dashboard/api/command` (`{tenant, orderId, verb, body}`):
//!   hold, resume or cancel, published to the order's command subject with
//!   a fresh `Nats-Msg-Id`, as the command line does; answers the Outcome;
//! - `POST /dashboard/api/throughput` (`{tenant, since?}`): the tenant's
//!   events and their latency in 10-second buckets over the last 15
//!   minutes, read back from the events stream ([`super::throughput`]);
//! - `POST /dashboard/api/live/session`: sets the live stream's cookie
//!   (below);
//! - `GET /dashboard/api/live?tenant=…`: the tenant's event messages as
//!   server-sent events, as they are published;
//! - `GET /dashboard/api/session`: what the login may do.
//!
//! Access: every route but the page needs a login of `http.dashboard_logins`
//! (`Authorization: Bearer TOKEN`), reads only the tenants the login names,
//! and sends commands only with the `operator` role. A browser's
//! `EventSource` cannot send that header, and a token in the address would
//! end up in logs and histories, so the live stream also takes a session
//! cookie: an authorised `POST /dashboard/api/live/session` answers with
//! `dashboard_live`, a random id (HttpOnly, SameSite=Strict, Path limited to
//! the live stream) standing for the login for [`LIVE_SESSION_LIFE`]; the
//! ids live in this process only, so after a restart the page asks again.
//! A `?token=` is not read. The views carry no personal data (contacts and
//! addresses are ids), so no role sees any.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap as HttpHeaders, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{json, Value};

use super::throughput::{self, ThroughputRequest};
use super::Web;
use crate::settings::DashboardLogin;
use crate::subjects::{self, Verb};
use crate::{headers, wire};

/// The page.
const PAGE: &str = include_str!("dashboard.html");

/// The read endpoints the page may ask.
const READS: [&str; 5] = ["get", "explain", "query", "history", "counts"];

/// The commands its buttons send.
const COMMANDS: [Verb; 3] = [Verb::Hold, Verb::Resume, Verb::Cancel];

/// How long a read or a command's outcome may take.
const WAIT: Duration = Duration::from_secs(10);

/// The live stream's session cookie.
const LIVE_COOKIE: &str = "dashboard_live";

/// How long a live session lasts (the page asks for another when its
/// stream is refused).
const LIVE_SESSION_LIFE: Duration = Duration::from_secs(12 * 60 * 60);

/// The most live sessions held at once.
const MAX_LIVE_SESSIONS: usize = 10_000;

/// The live stream's sessions: a random id → the login (its index in
/// `Web::logins`) and when the session ends.
#[derive(Clone, Default)]
pub(super) struct LiveSessions(Arc<Mutex<HashMap<String, (usize, Instant)>>>);

impl LiveSessions {
    /// A new session for login `index`; forgets the sessions that ended.
    fn open(&self, index: usize) -> String {
        let id = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let now = Instant::now();
        let mut sessions = self.0.lock().unwrap_or_else(|e| e.into_inner());
        sessions.retain(|_, (_, ends)| *ends > now);
        if sessions.len() >= MAX_LIVE_SESSIONS {
            // Bounded whatever the logins ask: the session that would end
            // first goes (its page asks for another when refused).
            let first = sessions.iter().min_by_key(|(_, (_, ends))| *ends);
            if let Some(id) = first.map(|(id, _)| id.clone()) {
                sessions.remove(&id);
            }
        }
        sessions.insert(id.clone(), (index, now + LIVE_SESSION_LIFE));
        id
    }

    /// The login a session stands for, while it lasts.
    fn login(&self, id: &str) -> Option<usize> {
        let sessions = self.0.lock().unwrap_or_else(|e| e.into_inner());
        sessions
            .get(id)
            .filter(|(_, ends)| *ends > Instant::now())
            .map(|(index, _)| *index)
    }
}

/// The dashboard's routes.
pub(super) fn routes() -> Router<Web> {
    Router::new()
        .route("/dashboard", get(page))
        .route("/dashboard/api/session", get(session))
        .route("/dashboard/api/read/{endpoint}", post(read))
        .route("/dashboard/api/command", post(command))
        .route("/dashboard/api/throughput", post(last_minutes))
        .route("/dashboard/api/live/session", post(live_session))
        .route("/dashboard/api/live", get(live))
}

/// A refusal, as the page reads it: the HTTP status and an ErrorBody.
fn refuse(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(wire::ErrorBody::error(code, message))).into_response()
}

/// NATS could not be asked.
fn unavailable(why: impl std::fmt::Display) -> Response {
    refuse(
        StatusCode::SERVICE_UNAVAILABLE,
        "ORD-503-UNAVAILABLE",
        &why.to_string(),
    )
}

/// Who may not do what they asked: the answer, small until it is sent.
struct Refusal(StatusCode, &'static str, &'static str);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        refuse(self.0, self.1, self.2)
    }
}

/// The login the request's bearer token names, if it is one.
fn login<'a>(web: &'a Web, http: &HttpHeaders) -> Option<&'a DashboardLogin> {
    let token = http
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))?;
    web.logins.iter().find(|l| l.token.expose() == token)
}

/// The login the request's live session cookie stands for, if any.
fn live_login<'a>(web: &'a Web, http: &HttpHeaders) -> Option<&'a DashboardLogin> {
    let session = http
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix(LIVE_COOKIE)?.strip_prefix('='))?;
    web.logins.get(web.live_sessions.login(session)?)
}

/// The 401 to answer without a login.
const LOGIN_REQUIRED: Refusal = Refusal(
    StatusCode::UNAUTHORIZED,
    "ORD-401-LOGIN_REQUIRED",
    "this needs a dashboard login (http.dashboard_logins)",
);

/// The login, or the 401 to answer.
fn authorised<'a>(web: &'a Web, http: &HttpHeaders) -> Result<&'a DashboardLogin, Refusal> {
    login(web, http).ok_or(LOGIN_REQUIRED)
}

/// `login`, if it may read `tenant`, or the 403 to answer.
fn may_read<'a>(login: &'a DashboardLogin, tenant: &str) -> Result<&'a DashboardLogin, Refusal> {
    if login.may_read(tenant) {
        Ok(login)
    } else {
        Err(Refusal(
            StatusCode::FORBIDDEN,
            "ORD-403-TENANT_NOT_ALLOWED",
            "this login may not read that tenant",
        ))
    }
}

/// The login, if it may read `tenant`, or the answer to give.
fn reader_of<'a>(
    web: &'a Web,
    http: &HttpHeaders,
    tenant: &str,
) -> Result<&'a DashboardLogin, Refusal> {
    may_read(authorised(web, http)?, tenant)
}

async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        Html(PAGE),
    )
        .into_response()
}

async fn session(State(web): State<Web>, http: HttpHeaders) -> Response {
    match authorised(&web, &http) {
        Ok(login) => Json(json!({
            "tenants": login.tenants.clone().unwrap_or_else(|| vec!["*".into()]),
            "role": if login.operator { "operator" } else { "viewer" },
        }))
        .into_response(),
        Err(refused) => refused.into_response(),
    }
}

async fn read(
    State(web): State<Web>,
    Path(endpoint): Path<String>,
    http: HttpHeaders,
    Json(body): Json<Value>,
) -> Response {
    if !READS.contains(&endpoint.as_str()) {
        return refuse(
            StatusCode::NOT_FOUND,
            "ORD-404-NO_SUCH_ENDPOINT",
            "the dashboard reads get, explain, query, history and counts",
        );
    }
    let tenant = body["tenant"].as_str().unwrap_or_default().to_owned();
    if let Err(refused) = reader_of(&web, &http, &tenant) {
        return refused.into_response();
    }
    let subject = format!("{}.{endpoint}", subjects::API_GROUP);
    let payload = match serde_json::to_vec(&body) {
        Ok(p) => p,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, "ORD-400-MALFORMED", &e.to_string()),
    };
    let asked = web.reader.client.request(subject, payload.into());
    let answer = match tokio::time::timeout(WAIT, asked).await {
        Ok(Ok(answer)) => answer,
        _ => {
            return refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "ORD-503-UNAVAILABLE",
                "orderd's read service did not answer in time",
            )
        }
    };
    let status = answer
        .headers
        .as_ref()
        .and_then(|h| h.get(headers::NATS_SERVICE_ERROR_CODE))
        .and_then(|c| c.as_str().parse::<u16>().ok())
        .and_then(|c| StatusCode::from_u16(c).ok())
        .unwrap_or(StatusCode::OK);
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        answer.payload.to_vec(),
    )
        .into_response()
}

/// A command from the page's buttons.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CommandRequest {
    tenant: String,
    order_id: String,
    verb: String,
    #[serde(default)]
    body: Option<Value>,
}

async fn command(
    State(web): State<Web>,
    http: HttpHeaders,
    Json(req): Json<CommandRequest>,
) -> Response {
    let login = match reader_of(&web, &http, &req.tenant) {
        Ok(login) => login,
        Err(refused) => return refused.into_response(),
    };
    if !login.operator {
        return refuse(
            StatusCode::FORBIDDEN,
            "ORD-403-OPERATOR_ONLY",
            "only an operator login sends commands",
        );
    }
    let Some(verb) = COMMANDS.into_iter().find(|v| v.as_str() == req.verb) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "ORD-400-UNKNOWN_COMMAND",
            "the dashboard sends hold, resume and cancel",
        );
    };
    let (Ok(tenant), Ok(order)) = (
        subjects::parse_tenant(&req.tenant),
        orderd_core::OrderId::parse(&req.order_id),
    ) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "ORD-400-MALFORMED",
            "tenant or orderId is not valid",
        );
    };
    let client = &web.reader.client;
    let inbox = client.new_inbox();
    let mut outcome = match client.subscribe(inbox.clone()).await {
        Ok(s) => s,
        Err(e) => return unavailable(e),
    };
    let key = format!("dashboard:{}", uuid::Uuid::new_v4());
    let mut h = HeaderMap::new();
    h.insert(headers::NATS_MSG_ID, key.as_str());
    h.insert(headers::ORDERD_REPLY_TO, inbox.as_str());
    h.insert(headers::CONTENT_TYPE, headers::JSON);
    let body = serde_json::to_vec(&req.body.unwrap_or_else(|| json!({}))).unwrap_or_default();
    let subject = subjects::command(&tenant, order, verb);
    let stored = async {
        web.reader
            .js
            .publish_with_headers(subject, h, body.into())
            .await
            .map_err(|e| e.to_string())?
            .await
            .map_err(|e| e.to_string())
    };
    if let Err(e) = stored.await {
        return unavailable(e);
    }
    match tokio::time::timeout(WAIT, outcome.next()).await {
        Ok(Some(msg)) => (
            [(header::CONTENT_TYPE, "application/json")],
            msg.payload.to_vec(),
        )
            .into_response(),
        _ => refuse(
            StatusCode::ACCEPTED,
            "ORD-202-PENDING",
            &format!("stored, not decided yet; ask orderd.v1.api.outcome for {key}"),
        ),
    }
}

/// The tenant's last minutes, for the page's chart.
async fn last_minutes(
    State(web): State<Web>,
    http: HttpHeaders,
    Json(req): Json<ThroughputRequest>,
) -> Response {
    if let Err(refused) = reader_of(&web, &http, &req.tenant) {
        return refused.into_response();
    }
    let Ok(tenant) = subjects::parse_tenant(&req.tenant) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "ORD-400-BAD_TENANT",
            "not a tenant id",
        );
    };
    match throughput::read(&web.reader.js, &tenant, req.since).await {
        Ok(answer) => Json(answer).into_response(),
        Err(e) => unavailable(e),
    }
}

/// A live session for the bearer's login, as an HttpOnly cookie only the
/// live stream receives.
async fn live_session(State(web): State<Web>, http: HttpHeaders) -> Response {
    let Some(index) =
        login(&web, &http).and_then(|l| web.logins.iter().position(|x| std::ptr::eq(x, l)))
    else {
        return LOGIN_REQUIRED.into_response();
    };
    let id = web.live_sessions.open(index);
    let cookie = format!(
        "{LIVE_COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/dashboard/api/live; Max-Age={}",
        LIVE_SESSION_LIFE.as_secs()
    );
    (
        StatusCode::NO_CONTENT,
        [
            (header::SET_COOKIE, cookie),
            (header::CACHE_CONTROL, "no-store".into()),
        ],
    )
        .into_response()
}

/// The tenant's event messages as server-sent events; the login is the
/// live session's cookie or a bearer token.
async fn live(
    State(web): State<Web>,
    http: HttpHeaders,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let tenant = query.get("tenant").cloned().unwrap_or_default();
    let allowed = live_login(&web, &http)
        .or_else(|| login(&web, &http))
        .ok_or(LOGIN_REQUIRED)
        .and_then(|l| may_read(l, &tenant));
    if let Err(refused) = allowed {
        return refused.into_response();
    }
    let Ok(tenant) = subjects::parse_tenant(&tenant) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "ORD-400-BAD_TENANT",
            "not a tenant id",
        );
    };
    let events = match web
        .reader
        .client
        .subscribe(subjects::events_of_tenant(&tenant))
        .await
    {
        Ok(s) => s,
        Err(e) => return unavailable(e),
    };
    let stream = events.map(|msg| {
        Ok::<_, Infallible>(Event::default().data(String::from_utf8_lossy(&msg.payload)))
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

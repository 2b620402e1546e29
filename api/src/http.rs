//! The router: `/graphql` (POST, batches of requests too, and GET, which HTTP caches may
//! keep), GraphiQL at `/` and `/graphiql`, `/health`, `/ready`, `/metrics` and the admin
//! cache endpoints existing tools call.
//!
//! Every request gets an id (`x-request-id`, the client's when it sends a sane one), a span
//! carrying it around everything logged while it is answered, and one `info` line when it
//! ends. Query texts may be sent once and then named by their SHA-256 (Apollo's automatic
//! persisted queries); they are looked up here, before the response cache, the parsed-document
//! cache and the mutation check on GET, which all see the text.

use std::sync::Arc;
use std::time::Instant;

use async_graphql::BatchRequest;
use axum::extract::{Extension, MatchedPath, Query, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use tower_http::limit::RequestBodyLimitLayer;
use tracing::Instrument as _;

use crate::graphql::{Caller, GraphSchema, prepare_at, schema};
use crate::metrics::Outcome;
use crate::snapshot::Snapshot;
use crate::state::{AppState, RefreshError};

/// What every handler gets: a handle cloned for every request by the layers and extractors
/// that need it, so one reference count, whatever it holds.
#[derive(Clone)]
pub struct App(Arc<AppParts>);

impl std::ops::Deref for App {
    type Target = AppParts;
    fn deref(&self) -> &AppParts {
        &self.0
    }
}

/// What [`App`] holds.
pub struct AppParts {
    pub state: Arc<AppState>,
    pub schema: GraphSchema,
    /// The same schema for introspection-only queries: GraphiQL's and code generators'
    /// standard query nests deeper than data queries may, and costs little.
    pub introspection: GraphSchema,
    /// Texts of persisted queries by their hash.
    pub persisted: PersistedQueries,
    /// The CORS rules, for requests that carry an `Origin`.
    cors: tower_http::cors::CorsLayer,
}

/// The header that carries a request's id, both ways.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The id of one HTTP request: in its span, its response header, its log line, and the data
/// of its GraphQL requests.
#[derive(Clone, Debug)]
pub struct RequestId(pub Arc<str>);

/// Errors of the plain HTTP routes, as JSON with a code.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("internal error; the server log has the details")]
    Internal(String),
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "BAD_USER_INPUT"),
            Self::Unauthenticated(_) => (StatusCode::UNAUTHORIZED, "UNAUTHENTICATED"),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "FORBIDDEN"),
            Self::Internal(detail) => {
                tracing::error!(error = %detail, "admin request failed");
                (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_SERVER_ERROR")
            }
        };
        (
            status,
            Json(json!({"error": self.to_string(), "code": code})),
        )
            .into_response()
    }
}

impl From<sea_orm::DbErr> for AppError {
    fn from(e: sea_orm::DbErr) -> Self {
        Self::Internal(e.to_string())
    }
}

/// The router over a state.
pub fn router(state: Arc<AppState>) -> Router {
    // Installed before the first request, so nothing recorded is lost.
    crate::metrics::handle();
    let settings = state.settings.clone();
    let app = App(Arc::new(AppParts {
        schema: schema(state.clone()),
        introspection: crate::graphql::introspection_schema(state.clone()),
        state,
        persisted: PersistedQueries::new(PERSISTED_QUERY_BYTES),
        cors: cors(&settings.cors_origins),
    }));
    // The routes that read a body with an extractor get its limit; `/graphql` reads its own
    // (`body_limit`).
    let others = Router::new()
        .merge(crate::graphiql::routes())
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .route("/admin/cache/stats", get(cache_stats))
        .route("/admin/cache/refresh", post(cache_refresh))
        .route("/admin/cache/warm", post(cache_warm))
        .route("/admin/cache/test", get(cache_test))
        .layer(axum::extract::DefaultBodyLimit::max(
            settings.body_limit_bytes,
        ))
        .layer(RequestBodyLimitLayer::new(settings.body_limit_bytes));
    Router::new()
        .route("/graphql", post(graphql_post).get(graphql_get_or_subscribe))
        .merge(others)
        .layer(axum::middleware::from_fn_with_state(app.clone(), edge))
        .with_state(app)
}

/// What every request goes through, in one layer (a layer of its own costs each request a
/// boxed future and a copy of its state): its id and span; CORS; `503` while setup runs; the
/// request timeout; errors as JSON; `no-store` unless the handler says otherwise; and, when
/// it is answered, one log line, its metrics and `x-request-id`. Outermost, so it sees the
/// final status of every request, errors raised on the way included.
async fn edge(State(app): State<App>, mut request: Request, next: Next) -> Response {
    let clock = Instant::now();
    let id: Arc<str> = request
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| is_sane_request_id(v))
        .map_or_else(new_request_id, Arc::from);
    let method = request.method().clone();
    // Both share the request's buffers: nothing is copied.
    let uri = request.uri().clone();
    // The route, not the path: unknown paths must not each make a series.
    let route = request.extensions().get::<MatchedPath>().cloned();
    request.extensions_mut().insert(RequestId(id.clone()));
    let span = tracing::info_span!("request", request_id = %id);
    let answer = async {
        if request.headers().contains_key(header::ORIGIN) {
            // A browser's request: tower-http answers preflights and adds the
            // `Access-Control-*` headers, to errors too.
            use tower::{Layer as _, ServiceExt as _};
            let inner = tower::service_fn(|request: Request| {
                let (app, next) = (app.clone(), next.clone());
                async move { Ok::<_, std::convert::Infallible>(guarded(&app, request, next).await) }
            });
            match app.cors.layer(inner).oneshot(request).await {
                Ok(response) => response,
                Err(never) => match never {},
            }
        } else {
            let mut response = guarded(&app, request, next).await;
            // What a CORS answer varies on, so a shared cache never hands this one to a browser.
            response
                .headers_mut()
                .append(header::VARY, HeaderValue::from_static(CORS_VARY));
            response
        }
    };
    let mut response = answer.instrument(span.clone()).await;
    let elapsed = clock.elapsed();
    let status = response.status().as_u16();
    let operation = response
        .extensions_mut()
        .remove::<Operations>()
        .map(|o| o.0);
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    span.in_scope(|| {
        tracing::info!(
            method = %method,
            path = uri.path(),
            operation = operation.as_deref(),
            status,
            duration_ms = elapsed.as_secs_f64() * 1e3,
            "request"
        );
    });
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    crate::metrics::http_request(&method, route, status, elapsed);
    response
}

/// The request headers a CORS answer depends on (tower-http's `Vary`).
const CORS_VARY: &str = "origin, access-control-request-method, access-control-request-headers";

/// A request past CORS: `503` while `serve` sets up an empty database (only `/health`,
/// `/ready` and `/metrics` answer meanwhile), `408` past `--request-timeout-secs`, errors
/// as JSON and `no-store` by default.
async fn guarded(app: &App, request: Request, next: Next) -> Response {
    let always = matches!(request.uri().path(), "/health" | "/ready" | "/metrics");
    if app.state.is_starting() && !always {
        let mut response = (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({
                "error": "the server is starting: setup is loading data into the empty database",
                "code": "SERVICE_UNAVAILABLE",
            })),
        )
            .into_response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        return no_store_by_default(response);
    }
    // The timer is armed only if the answer is not ready at its first poll.
    let response = tokio::time::timeout(app.state.settings.request_timeout, next.run(request))
        .await
        .unwrap_or_else(|_| StatusCode::REQUEST_TIMEOUT.into_response());
    no_store_by_default(json_errors(response).await)
}

/// A new request id: a random (version 4) UUID from a generator seeded once per thread, so
/// making one costs no system call.
fn new_request_id() -> Arc<str> {
    use std::cell::Cell;
    use std::hash::{BuildHasher as _, Hasher as _};
    thread_local! {
        static STATE: Cell<u64> = Cell::new(std::hash::RandomState::new().build_hasher().finish());
    }
    // SplitMix64: passes BigCrush, and a request id needs no more than uniqueness.
    let next = || {
        STATE.with(|state| {
            let s = state.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
            state.set(s);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        })
    };
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&next().to_le_bytes());
    bytes[8..].copy_from_slice(&next().to_le_bytes());
    let id = uuid::Builder::from_random_bytes(bytes).into_uuid();
    Arc::from(
        &*id.hyphenated()
            .encode_lower(&mut uuid::Uuid::encode_buffer()),
    )
}

/// A client's request id is kept when it is a short token (letters, digits, `-`, `_`, `.`,
/// `:`; at most 64), so it cannot forge log lines or bloat them; otherwise one is made.
fn is_sane_request_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// The id [`edge`] gave the request (a new one if it did not run, as in a router built
/// without it).
fn request_id(extensions: &axum::http::Extensions) -> RequestId {
    extensions
        .get::<RequestId>()
        .cloned()
        .unwrap_or_else(|| RequestId(new_request_id()))
}

/// The operation names a response answered, for the request's log line.
#[derive(Clone, Debug)]
struct Operations(String);

fn with_operations(mut response: Response, names: String) -> Response {
    response.extensions_mut().insert(Operations(names));
    response
}

/// Nothing is kept by HTTP caches unless its handler says so (GET queries, GraphiQL's files):
/// errors, POST answers, `/ready` and the admin routes get `Cache-Control: no-store`.
fn no_store_by_default(mut response: Response) -> Response {
    if !response.headers().contains_key(header::CACHE_CONTROL) {
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// Browsers may call the API from the configured origins: preflights are answered, `GET` and
/// `POST` with `content-type` and `authorization` allowed, no credentials (the admin token is
/// a bearer header, never a cookie). Origins that are not valid header values are left out.
fn cors(origins: &str) -> tower_http::cors::CorsLayer {
    use tower_http::cors::{AllowOrigin, CorsLayer};
    let allow = if origins.trim() == "*" {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            origins
                .split(',')
                .map(str::trim)
                .filter(|o| !o.is_empty())
                .filter_map(|o| header::HeaderValue::from_str(o).ok()),
        )
    };
    CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([axum::http::Method::GET, axum::http::Method::POST])
        .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION])
        .max_age(std::time::Duration::from_secs(600))
}

/// Errors raised below the handlers (a body over the limit, a timeout, JSON that does not
/// parse, an unknown route or method) answer `{"error", "code"}` like every other error,
/// never plain text.
async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let code = match status {
        StatusCode::NOT_FOUND => "NOT_FOUND",
        StatusCode::METHOD_NOT_ALLOWED => "METHOD_NOT_ALLOWED",
        StatusCode::REQUEST_TIMEOUT => "TIMEOUT",
        StatusCode::PAYLOAD_TOO_LARGE => "PAYLOAD_TOO_LARGE",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "UNSUPPORTED_MEDIA_TYPE",
        StatusCode::SERVICE_UNAVAILABLE => "SERVICE_UNAVAILABLE",
        s if s.is_server_error() => "INTERNAL_SERVER_ERROR",
        _ => "BAD_REQUEST",
    };
    let (parts, body) = response.into_parts();
    let text = match axum::body::to_bytes(body, 4096).await {
        Ok(bytes) if !bytes.is_empty() => String::from_utf8_lossy(&bytes).trim().to_owned(),
        _ => status
            .canonical_reason()
            .unwrap_or("request failed")
            .to_owned(),
    };
    let mut out = (status, Json(json!({"error": text, "code": code}))).into_response();
    if let Some(allow) = parts.headers.get(header::ALLOW) {
        out.headers_mut().insert(header::ALLOW, allow.clone());
    }
    out
}

fn is_admin(state: &AppState, headers: &HeaderMap) -> bool {
    let Some(token) = &state.settings.admin_token else {
        return false;
    };
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|given| constant_time_eq(given.trim().as_bytes(), token.as_bytes()))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn require_admin(state: &AppState, headers: &HeaderMap) -> Result<(), AppError> {
    if state.settings.admin_token.is_none() {
        return Err(AppError::Forbidden(
            "admin endpoints are disabled: start the server with --admin-token <TOKEN> \
             (or ADMIN_TOKEN) and send `Authorization: Bearer <TOKEN>`"
                .to_owned(),
        ));
    }
    if !is_admin(state, headers) {
        return Err(AppError::Unauthenticated(
            "send `Authorization: Bearer <admin token>`".to_owned(),
        ));
    }
    Ok(())
}

/// The largest body an admin's file upload may have: the file and the request around it.
fn upload_limit(state: &AppState) -> usize {
    usize::try_from(state.config.max_file_bytes)
        .unwrap_or(usize::MAX)
        .saturating_add(state.settings.body_limit_bytes)
}

/// The body limit of one `/graphql` POST: `--max-body-bytes`, except for a multipart request
/// (a file upload) with the admin token, which may carry a file up to `--max-file-bytes`.
fn body_limit(app: &App, headers: &HeaderMap) -> (usize, &'static str) {
    let multipart = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    if multipart && is_admin(&app.state, headers) {
        (upload_limit(&app.state), "--max-file-bytes")
    } else {
        (app.state.settings.body_limit_bytes, "--max-body-bytes")
    }
}

async fn graphql_post(State(app): State<App>, request: Request) -> Response {
    // The parts are taken, not extracted: extractors would copy the headers.
    let (parts, body) = request.into_parts();
    let headers = &parts.headers;
    let id = request_id(&parts.extensions);
    let (limit, option) = body_limit(&app, headers);
    let body = match axum::body::to_bytes(body, limit).await {
        Ok(body) => body,
        Err(e) => {
            let too_large = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            let (status, code, message) = if too_large {
                (
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "PAYLOAD_TOO_LARGE",
                    format!("the request body is larger than {limit} bytes ({option})"),
                )
            } else {
                (
                    StatusCode::BAD_REQUEST,
                    "BAD_REQUEST",
                    format!("the request body could not be read: {e}"),
                )
            };
            return (status, Json(json!({"error": message, "code": code}))).into_response();
        }
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let parsed = async_graphql::http::receive_batch_body(
        content_type,
        futures_util::io::Cursor::new(body),
        async_graphql::http::MultipartOptions::default()
            .max_file_size(limit)
            .max_num_files(1),
    )
    .await;
    let batch = match parsed {
        Ok(batch) => batch,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(
                    json!({"error": format!("not a GraphQL request: {e}"), "code": "BAD_REQUEST"}),
                ),
            )
                .into_response();
        }
    };
    let call = Call::new(&app, headers, id);
    match batch {
        BatchRequest::Single(request) => {
            let (answer, operation) = call.answer(request).await;
            with_operations(json_body(answer.body), operation)
        }
        BatchRequest::Batch(requests) => {
            let max = app.state.settings.max_batch;
            if requests.len() > max {
                return (
                    StatusCode::BAD_REQUEST,
                    Json(json!({
                        "error": format!(
                            "a batch holds at most {max} requests (--max-batch); this one holds {}",
                            requests.len()
                        ),
                        "code": "BATCH_TOO_LARGE",
                    })),
                )
                    .into_response();
            }
            // Each item under the limits of a request of its own, all from one snapshot.
            let answers =
                futures_util::future::join_all(requests.into_iter().map(|r| call.answer(r))).await;
            let mut body = Vec::with_capacity(answers.iter().map(|(a, _)| a.body.len() + 1).sum());
            body.push(b'[');
            let mut operations = Vec::with_capacity(answers.len());
            for (i, (answer, operation)) in answers.into_iter().enumerate() {
                if i > 0 {
                    body.push(b',');
                }
                body.extend_from_slice(&answer.body);
                operations.push(operation);
            }
            body.push(b']');
            with_operations(json_body(body.into()), operations.join(","))
        }
    }
}

/// `GET /graphql`: a websocket upgrade serves subscriptions ([`subscribe`]); any other GET is
/// a query ([`graphql_get`]).
async fn graphql_get_or_subscribe(State(app): State<App>, request: Request) -> Response {
    let upgrade = request
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if upgrade {
        subscribe(app, request).await
    } else {
        axum::handler::Handler::call(graphql_get, request, app).await
    }
}

/// Subscriptions over a websocket, in the protocol the client asks for in
/// `Sec-WebSocket-Protocol`: `graphql-transport-ws` (the `graphql-ws` library's) or the older
/// `graphql-ws` (Apollo's `subscriptions-transport-ws`). Each connection gets its own run
/// dataloader; the connection's task carries the upgrade request's span (its request id).
async fn subscribe(app: App, request: Request) -> Response {
    use async_graphql::http::ALL_WEBSOCKET_PROTOCOLS;
    use async_graphql_axum::{GraphQLProtocol, GraphQLWebSocket};
    use axum::extract::FromRequestParts as _;
    use axum::extract::ws::WebSocketUpgrade;
    let (mut parts, _) = request.into_parts();
    let Ok(protocol) = GraphQLProtocol::from_request_parts(&mut parts, &()).await else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({
                "error": "a websocket on /graphql speaks GraphQL: send `Sec-WebSocket-Protocol: \
                          graphql-transport-ws` (or the older `graphql-ws`)",
                "code": "BAD_REQUEST",
            })),
        )
            .into_response();
    };
    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(upgrade) => upgrade,
        Err(rejection) => return rejection.into_response(),
    };
    let caller = Caller {
        admin: is_admin(&app.state, &parts.headers),
    };
    let data = crate::graphql::subscription::connection_data(&app.state, caller);
    let schema = app.schema.clone();
    let span = tracing::Span::current();
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |socket| {
            GraphQLWebSocket::new(socket, schema, protocol)
                .with_data(data)
                .serve()
                .instrument(span)
        })
}

/// `GET /graphql` parameters, as GraphQL over HTTP names them (`variables` and `extensions`
/// are JSON text).
#[derive(Deserialize)]
struct GetParams {
    #[serde(default)]
    query: String,
    #[serde(default, rename = "operationName", alias = "operation_name")]
    operation_name: Option<String>,
    #[serde(default)]
    variables: Option<String>,
    #[serde(default)]
    extensions: Option<String>,
}

async fn graphql_get(
    State(app): State<App>,
    Extension(id): Extension<RequestId>,
    headers: HeaderMap,
    Query(params): Query<GetParams>,
) -> Response {
    let clock = Instant::now();
    let operation = crate::metrics::operation_label(params.operation_name.as_deref());
    let (response, outcome) = answer_get(&app, id, &headers, params).await;
    crate::metrics::graphql_request(&operation, outcome, clock.elapsed());
    with_operations(response, operation)
}

/// A GET query: refused if it would write; `304` when the client's ETag is current; else
/// answered, with `Cache-Control` and `ETag` when the answer may be cached.
async fn answer_get(
    app: &App,
    id: RequestId,
    headers: &HeaderMap,
    params: GetParams,
) -> (Response, Outcome) {
    let mut request = async_graphql::Request::new(params.query);
    if let Some(name) = params.operation_name {
        request = request.operation_name(name);
    }
    if let Some(text) = params.variables.filter(|v| !v.is_empty()) {
        match serde_json::from_str(&text) {
            Ok(json) => request = request.variables(async_graphql::Variables::from_json(json)),
            Err(e) => {
                let message = format!("`variables` is not JSON: {e}");
                let response = http_error(StatusCode::BAD_REQUEST, "BAD_REQUEST", &message);
                return (response, Outcome::Error);
            }
        }
    }
    if let Some(text) = params.extensions.filter(|v| !v.is_empty()) {
        match serde_json::from_str(&text) {
            Ok(extensions) => request.extensions = extensions,
            Err(e) => {
                let message = format!("`extensions` is not a JSON object: {e}");
                let response = http_error(StatusCode::BAD_REQUEST, "BAD_REQUEST", &message);
                return (response, Outcome::Error);
            }
        }
    }
    let request = match app.persisted.resolve(request).await {
        Ok(request) => request,
        Err(e) => return (json_body(e.body()), Outcome::Error),
    };
    if is_mutation(&request) {
        // GraphQL over HTTP: GET is for reads only, so a link or a crawler never writes.
        let mut response = http_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "BAD_REQUEST",
            "mutations need POST",
        );
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return (response, Outcome::Error);
    }
    let call = Call::new(app, headers, id);
    let key = response_key(&request);
    let tag = key
        .as_deref()
        .map(|key| etag(&app.state, call.snapshot.version, key));
    let max_age = format!(
        "public, max-age={}",
        app.state.settings.http_max_age.as_secs()
    );
    let cached = |mut response: Response, tag: &str| {
        let headers = response.headers_mut();
        if let Ok(value) = HeaderValue::from_str(tag) {
            headers.insert(header::ETAG, value);
        }
        if let Ok(value) = HeaderValue::from_str(&max_age) {
            headers.insert(header::CACHE_CONTROL, value);
        }
        response
    };
    if let Some(tag) = &tag
        && if_none_match(headers, tag)
    {
        // Same version, same request: the same answer. Nothing is executed.
        let response = cached(StatusCode::NOT_MODIFIED.into_response(), tag);
        return (response, Outcome::NotModified);
    }
    let key = key.filter(|_| crate::graphql::repeated(&request.query));
    let answer = call.run(request, key).await;
    let response = json_body(answer.body);
    match tag.filter(|_| answer.cacheable) {
        Some(tag) => (cached(response, &tag), answer.outcome),
        None => (response, answer.outcome),
    }
}

/// A strong ETag of a query's answer: the data version and a hash of the request (query,
/// operation, variables), the environment and the server's version. One version's data and
/// one request always give the same bytes, so the tag is known before anything runs, and a
/// load changes it.
fn etag(state: &AppState, version: i64, key: &str) -> String {
    let digest = Sha256::new()
        .chain_update(env!("CARGO_PKG_VERSION"))
        .chain_update([0])
        .chain_update(state.environment())
        .chain_update([0])
        .chain_update(key)
        .finalize();
    format!("\"v{version}-{}\"", hex(&digest[..12]))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

/// Whether `If-None-Match` names `tag` (or is `*`); weak tags compare by their value.
fn if_none_match(headers: &HeaderMap, tag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|given| given == "*" || given.trim_start_matches("W/") == tag)
}

/// A GraphQL-shaped error answered before execution.
fn http_error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, json_body(error_body(code, message))).into_response()
}

/// The body of a GraphQL response holding one error.
fn error_body(code: &str, message: &str) -> axum::body::Bytes {
    json!({"errors": [{"message": message, "extensions": {"code": code}}]})
        .to_string()
        .into()
}

/// One answered GraphQL request.
struct Answer {
    /// The response as JSON.
    body: axum::body::Bytes,
    outcome: Outcome,
    /// Whether HTTP caches may keep it: a query answered without errors whose every field
    /// may be cached.
    cacheable: bool,
}

impl Answer {
    fn error(code: &str, message: &str, outcome: Outcome) -> Self {
        Self {
            body: error_body(code, message),
            outcome,
            cacheable: false,
        }
    }
}

/// What the requests of one HTTP call share: who asks, and the snapshot they all answer from
/// (a batch never mixes two versions).
struct Call<'a> {
    app: &'a App,
    caller: Caller,
    snapshot: Arc<Snapshot>,
    id: RequestId,
}

impl<'a> Call<'a> {
    fn new(app: &'a App, headers: &HeaderMap, id: RequestId) -> Self {
        Self {
            app,
            caller: Caller {
                admin: is_admin(&app.state, headers),
            },
            snapshot: app.state.snapshot(),
            id,
        }
    }

    /// Answers one request (a POST body or an item of a batch), counting it in the metrics;
    /// returns its operation label too.
    async fn answer(&self, request: async_graphql::Request) -> (Answer, String) {
        let clock = Instant::now();
        let operation = crate::metrics::operation_label(request.operation_name.as_deref());
        let answer = match self.app.persisted.resolve(request).await {
            Ok(request) => {
                // Responses are cached from a text's third request on: a text sent once or
                // twice is not worth a key.
                let key = if crate::graphql::repeated(&request.query) {
                    response_key(&request)
                } else {
                    None
                };
                self.run(request, key).await
            }
            Err(e) => Answer::error(e.code(), &e.to_string(), Outcome::Error),
        };
        crate::metrics::graphql_request(&operation, answer.outcome, clock.elapsed());
        (answer, operation)
    }

    /// Executes a request through the response cache (`key` is its response-cache key, if
    /// its answer is worth caching).
    async fn run(&self, request: async_graphql::Request, key: Option<String>) -> Answer {
        let app = self.app;
        let snapshot = &self.snapshot;
        if let Some(key) = &key
            && let Some(body) = snapshot.caches.responses.get(key).await
        {
            return Answer {
                body,
                outcome: Outcome::Ok,
                cacheable: true,
            };
        }
        let schema = if crate::graphql::is_introspection(&request.query) {
            &app.introspection
        } else {
            &app.schema
        };
        let request =
            prepare_at(request, &app.state, snapshot.clone(), self.caller).data(self.id.clone());
        let limit = app.state.settings.request_timeout;
        let Ok(response) =
            tokio::time::timeout(limit, crate::graphql::execute(schema, request)).await
        else {
            let message = format!(
                "the query ran longer than {} s (--request-timeout-secs) and was stopped",
                limit.as_secs_f64()
            );
            return Answer::error("TIMEOUT", &message, Outcome::Timeout);
        };
        let ok = response.errors.is_empty();
        let cacheable = ok && response.cache_control.max_age != -1;
        let body = match serde_json::to_vec(&response) {
            Ok(bytes) => axum::body::Bytes::from(bytes),
            Err(e) => {
                tracing::error!(error = %e, "cannot serialise a response");
                return Answer::error(
                    "INTERNAL_SERVER_ERROR",
                    "internal error; the server log has the details",
                    Outcome::Error,
                );
            }
        };
        if cacheable && let Some(key) = key {
            snapshot.caches.responses.fill([(key, body.clone())]).await;
        }
        Answer {
            body,
            outcome: if ok { Outcome::Ok } else { Outcome::Error },
            cacheable,
        }
    }
}

/// Whether the operation a request would run is a mutation (an unparsable query is left to
/// the executor, which reports it).
fn is_mutation(request: &async_graphql::Request) -> bool {
    use async_graphql::parser::types::{DocumentOperations, OperationType};
    // A mutation is written with its keyword: other texts (every GET a dashboard repeats)
    // are not parsed here.
    if !request.query.contains("mutation") {
        return false;
    }
    let Ok(document) = crate::graphql::parse::parse(&request.query) else {
        return false;
    };
    let kind = match (&document.operations, request.operation_name.as_deref()) {
        (DocumentOperations::Single(op), _) => Some(op.node.ty),
        (DocumentOperations::Multiple(ops), Some(name)) => ops.get(name).map(|op| op.node.ty),
        // Several operations and no name: the executor refuses to choose.
        (DocumentOperations::Multiple(_), None) => None,
    };
    kind == Some(OperationType::Mutation)
}

/// The response-cache key of a query; `None` for anything that may write (a mutation) or
/// carries uploads. The version is not part of it: each version has its own response cache.
fn response_key(request: &async_graphql::Request) -> Option<String> {
    if request.query.contains("mutation") || !request.uploads.is_empty() {
        return None;
    }
    let variables = serde_json::to_string(&request.variables).ok()?;
    Some(format!(
        "{}\u{0}{}\u{0}{variables}",
        request.query,
        request.operation_name.as_deref().unwrap_or("")
    ))
}

/// A GraphQL answer: JSON, not to be kept by HTTP caches unless the caller says otherwise.
fn json_body(body: axum::body::Bytes) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

/// Bytes the persisted-query texts may take.
const PERSISTED_QUERY_BYTES: u64 = 8 * 1024 * 1024;

/// Query texts by the SHA-256 of their text, for Apollo's automatic persisted queries: a
/// client sends `extensions.persistedQuery {version: 1, sha256Hash}` without the text, and
/// the text with it once when told `PersistedQueryNotFound`. Bounded by size; a text pushed
/// out is simply sent again.
///
/// async-graphql's `ApolloPersistedQueries` extension does the same inside the executor, but
/// it hands the executor a parsed document without its text, and the response cache and the
/// mutation check on GET work from the text, before execution; so the look-up is here.
#[derive(Clone)]
pub struct PersistedQueries {
    texts: moka::future::Cache<String, Arc<str>>,
}

/// `extensions.persistedQuery`.
#[derive(Deserialize)]
struct PersistedQuery {
    version: i32,
    #[serde(rename = "sha256Hash")]
    sha256_hash: String,
}

/// Why a persisted query could not be used.
#[derive(Debug, thiserror::Error)]
pub enum PersistedQueryError {
    /// The hash names no text this server knows: send the text with it.
    #[error("PersistedQueryNotFound")]
    NotFound,
    #[error("provided sha does not match query")]
    HashMismatch,
    #[error("{0}")]
    Invalid(String),
}

impl PersistedQueryError {
    /// Its `extensions.code`: Apollo's names, so Apollo clients react to them.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound => "PERSISTED_QUERY_NOT_FOUND",
            Self::HashMismatch => "PERSISTED_QUERY_HASH_MISMATCH",
            Self::Invalid(_) => "BAD_REQUEST",
        }
    }

    fn body(&self) -> axum::body::Bytes {
        error_body(self.code(), &self.to_string())
    }
}

impl PersistedQueries {
    /// Texts taking up to `bytes`.
    pub fn new(bytes: u64) -> Self {
        Self {
            texts: moka::future::Cache::builder()
                .weigher(|k: &String, v: &Arc<str>| {
                    u32::try_from(k.len() + v.len()).unwrap_or(u32::MAX)
                })
                .max_capacity(bytes)
                .build(),
        }
    }

    /// A request ready to execute: one naming a persisted query gets its text (or stores the
    /// text it carries under its hash, once the hash is checked); others pass unchanged.
    pub async fn resolve(
        &self,
        mut request: async_graphql::Request,
    ) -> Result<async_graphql::Request, PersistedQueryError> {
        let Some(value) = request.extensions.remove("persistedQuery") else {
            return Ok(request);
        };
        let persisted: PersistedQuery = async_graphql::from_value(value).map_err(|_| {
            PersistedQueryError::Invalid(
                "`extensions.persistedQuery` must be {\"version\": 1, \"sha256Hash\": \"...\"}"
                    .to_owned(),
            )
        })?;
        if persisted.version != 1 {
            return Err(PersistedQueryError::Invalid(format!(
                "persisted query version {} is not supported (only 1)",
                persisted.version
            )));
        }
        let hash = persisted.sha256_hash.to_ascii_lowercase();
        if request.query.is_empty() {
            let found = self.texts.get(&hash).await;
            crate::metrics::cache_lookup("persisted_query", found.is_some());
            let text = found.ok_or(PersistedQueryError::NotFound)?;
            request.query = text.to_string();
            return Ok(request);
        }
        if hex(&Sha256::digest(request.query.as_bytes())) != hash {
            return Err(PersistedQueryError::HashMismatch);
        }
        if !self.texts.contains_key(&hash) {
            self.texts.insert(hash, request.query.as_str().into()).await;
        }
        Ok(request)
    }
}

async fn health() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// Prometheus metrics in the text exposition format (`api/src/metrics.rs` lists them).
async fn metrics(State(app): State<App>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::metrics::render(&app.state),
    )
        .into_response()
}

/// Ready when the database answers within half a second and the snapshot holds data; 503
/// with a JSON reason otherwise (queries are still answered from the snapshot meanwhile), and
/// 503 `starting` while `serve` sets up an empty database.
async fn ready(State(app): State<App>) -> Response {
    let state = &app.state;
    if state.is_starting() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "starting", "reason": "setup running"})),
        )
            .into_response();
    }
    let snap = state.snapshot();
    let check = tokio::time::timeout(
        std::time::Duration::from_millis(500),
        loader::store::data_version(&state.db, state.environment()),
    )
    .await;
    let unavailable = |reason: String| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({
                "status": "unavailable",
                "reason": reason,
                "serving_data_version": snap.version,
            })),
        )
            .into_response()
    };
    match check {
        Err(_) => {
            state.record_contact::<()>(&Err(sea_orm::DbErr::Custom(
                "the database did not answer within 500 ms".to_owned(),
            )));
            unavailable("the database did not answer within 500 ms".to_owned())
        }
        Ok(Err(e)) => {
            state.record_contact::<()>(&Err(e));
            unavailable("the database is unreachable".to_owned())
        }
        Ok(Ok(_)) if snap.groups.is_empty() => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "empty", "reason": "no data loaded yet", "data_version": snap.version, "groups": 0})),
        )
            .into_response(),
        Ok(Ok(v)) => Json(json!({
            "status": "ready",
            "data_version": v,
            "serving_data_version": snap.version,
            "groups": snap.groups.len(),
            "memberships": snap.memberships,
        }))
        .into_response(),
    }
}

async fn cache_stats(
    State(app): State<App>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, AppError> {
    require_admin(&app.state, &headers)?;
    let state = &app.state;
    Ok(Json(json!({
        "data_version": state.version(),
        "caches": state.cache_stats(),
        "db_queries": state.queries(),
    })))
}

/// `POST /admin/cache/refresh` body.
#[derive(Deserialize)]
struct RefreshBody {
    cache_type: String,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    warm: bool,
}

async fn cache_refresh(
    State(app): State<App>,
    headers: HeaderMap,
    body: Result<Json<RefreshBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<serde_json::Value>, AppError> {
    require_admin(&app.state, &headers)?;
    let Json(body) = body.map_err(|e| AppError::BadRequest(e.body_text()))?;
    let outcome = app
        .state
        .refresh(&body.cache_type, body.key.as_deref(), body.warm)
        .await
        .map_err(|e| match e {
            RefreshError::BadInput(m) => AppError::BadRequest(m),
            RefreshError::Db(e) => e.into(),
        })?;
    Ok(Json(json!({
        "cache_type": body.cache_type,
        "key": body.key,
        "invalidated": outcome.invalidated,
        "warmed": outcome.warmed,
        "caches": app.state.cache_stats(),
    })))
}

async fn cache_warm(
    State(app): State<App>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, AppError> {
    require_admin(&app.state, &headers)?;
    let clock = Instant::now();
    let (groups, stocks) = app.state.warm().await?;
    Ok(Json(json!({
        "groups": groups,
        "stocks": stocks,
        "elapsed_ms": clock.elapsed().as_secs_f64() * 1e3,
        "caches": app.state.cache_stats(),
    })))
}

/// Timed look-ups in the snapshot: SPY's holdings and AAPL's sector.
async fn cache_test(
    State(app): State<App>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, AppError> {
    require_admin(&app.state, &headers)?;
    let snap = app.state.snapshot();
    let clock = Instant::now();
    let Some(spy) = snap.find(entity::GroupType::Etf, "SPY") else {
        return Err(AppError::BadRequest("no ETF SPY is loaded".to_owned()));
    };
    let holdings = snap.group(spy).members.len();
    let spy_us = clock.elapsed().as_secs_f64() * 1e6;
    let clock = Instant::now();
    let sector = snap
        .stock("AAPL")
        .and_then(|s| snap.stock_at(s).sector)
        .map_or_else(
            || "unknown".to_owned(),
            |g| snap.group(g).model.name.clone(),
        );
    let sector_us = clock.elapsed().as_secs_f64() * 1e6;
    Ok(Json(json!({
        "data_version": snap.version,
        "spy_holdings": holdings,
        "spy_us": spy_us,
        "aapl_sector": sector,
        "aapl_sector_us": sector_us,
    })))
}

//! The router: `/graphql` (POST and GET), GraphiQL at `/` and `/graphiql`, `/health`,
//! `/ready` and the admin cache endpoints existing tools call.

use std::sync::Arc;
use std::time::Instant;

use async_graphql_axum::GraphQLResponse;
use axum::extract::Query;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::graphql::{Caller, GraphSchema, prepare_at, schema};
use crate::state::{AppState, RefreshError};

/// What every handler gets.
#[derive(Clone)]
pub struct App {
    pub state: Arc<AppState>,
    pub schema: GraphSchema,
    /// The same schema for introspection-only queries: GraphiQL's and code generators'
    /// standard query nests deeper than data queries may, and costs little.
    pub introspection: GraphSchema,
}

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
    let settings = state.settings.clone();
    let app = App {
        schema: schema(state.clone()),
        introspection: crate::graphql::introspection_schema(state.clone()),
        state,
    };
    Router::new()
        .route("/graphql", post(graphql_post).get(graphql_get))
        .merge(crate::graphiql::routes())
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/admin/cache/stats", get(cache_stats))
        .route("/admin/cache/refresh", post(cache_refresh))
        .route("/admin/cache/warm", post(cache_warm))
        .route("/admin/cache/test", get(cache_test))
        .layer(axum::extract::DefaultBodyLimit::max(
            settings.body_limit_bytes,
        ))
        .layer(RequestBodyLimitLayer::new(settings.body_limit_bytes))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            settings.request_timeout,
        ))
        .layer(axum::middleware::map_response(json_errors))
        .layer(cors(&settings.cors_origins))
        .layer(TraceLayer::new_for_http())
        .with_state(app)
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

async fn graphql_post(
    State(app): State<App>,
    headers: HeaderMap,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(e) => {
            let status = e.status();
            let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
                "PAYLOAD_TOO_LARGE"
            } else {
                "BAD_REQUEST"
            };
            let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
                format!(
                    "the request body is larger than {} bytes (--max-body-bytes)",
                    app.state.settings.body_limit_bytes
                )
            } else {
                e.body_text()
            };
            return (status, Json(json!({"error": message, "code": code}))).into_response();
        }
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let parsed = async_graphql::http::receive_body(
        content_type,
        futures_util::io::Cursor::new(body),
        async_graphql::http::MultipartOptions::default(),
    )
    .await;
    match parsed {
        Ok(request) => answer(&app, &headers, request).await,
        Err(e) => (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": format!("not a GraphQL request: {e}"), "code": "BAD_REQUEST"})),
        )
            .into_response(),
    }
}

/// `GET /graphql` parameters, as GraphQL over HTTP names them (`variables` is JSON text).
#[derive(Deserialize)]
struct GetParams {
    #[serde(default)]
    query: String,
    #[serde(default, rename = "operationName", alias = "operation_name")]
    operation_name: Option<String>,
    #[serde(default)]
    variables: Option<String>,
}

async fn graphql_get(
    State(app): State<App>,
    headers: HeaderMap,
    Query(params): Query<GetParams>,
) -> Response {
    let mut request = async_graphql::Request::new(params.query);
    if let Some(name) = params.operation_name {
        request = request.operation_name(name);
    }
    if let Some(text) = params.variables.filter(|v| !v.is_empty()) {
        match serde_json::from_str(&text) {
            Ok(json) => request = request.variables(async_graphql::Variables::from_json(json)),
            Err(e) => {
                return http_error(
                    StatusCode::BAD_REQUEST,
                    "BAD_REQUEST",
                    &format!("`variables` is not JSON: {e}"),
                );
            }
        }
    }
    if is_mutation(&request) {
        // GraphQL over HTTP: GET is for reads only, so a link or a crawler never writes.
        let mut response = http_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "BAD_REQUEST",
            "mutations need POST",
        );
        response
            .headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("POST"));
        return response;
    }
    answer(&app, &headers, request).await
}

/// A GraphQL-shaped error answered before execution.
fn http_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({"errors": [{"message": message, "extensions": {"code": code}}]});
    (status, Json(body)).into_response()
}

/// Executes a request from either method, through the response cache.
async fn answer(app: &App, headers: &HeaderMap, request: async_graphql::Request) -> Response {
    // One snapshot for the look-up, the execution and the fill: a response is only ever
    // cached with the version it was computed from.
    let snapshot = app.state.snapshot();
    // Responses are cached from a text's second request on: a one-off text is not worth it.
    let key = response_key(&request).filter(|_| crate::graphql::seen_before(&request.query));
    if let Some(key) = &key
        && let Some(body) = snapshot.caches.responses.get(key).await
    {
        return json_body(body);
    }
    let caller = Caller {
        admin: is_admin(&app.state, headers),
    };
    let schema = if crate::graphql::is_introspection(&request.query) {
        &app.introspection
    } else {
        &app.schema
    };
    let request = prepare_at(request, &app.state, snapshot.clone(), caller);
    let limit = app.state.settings.request_timeout;
    let Ok(response) = tokio::time::timeout(limit, crate::graphql::execute(schema, request)).await
    else {
        return http_error(
            StatusCode::OK,
            "TIMEOUT",
            &format!(
                "the query ran longer than {} s (--request-timeout-secs) and was stopped",
                limit.as_secs_f64()
            ),
        );
    };
    let cacheable = response.errors.is_empty() && response.cache_control.max_age != -1;
    match (key, cacheable) {
        (Some(key), true) => match serde_json::to_vec(&response) {
            Ok(bytes) => {
                let body = axum::body::Bytes::from(bytes);
                snapshot.caches.responses.fill([(key, body.clone())]).await;
                json_body(body)
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot serialise a response");
                GraphQLResponse::from(response).into_response()
            }
        },
        _ => GraphQLResponse::from(response).into_response(),
    }
}

/// Whether the operation a request would run is a mutation (an unparsable query is left to
/// the executor, which reports it).
fn is_mutation(request: &async_graphql::Request) -> bool {
    use async_graphql::parser::types::{DocumentOperations, OperationType};
    let Ok(document) = async_graphql::parser::parse_query(&request.query) else {
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

fn json_body(body: axum::body::Bytes) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn health() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// Ready when the database answers within half a second and the snapshot holds data; 503
/// with a JSON reason otherwise (queries are still answered from the snapshot meanwhile).
async fn ready(State(app): State<App>) -> Response {
    let state = &app.state;
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

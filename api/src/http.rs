//! The router: `/graphql` (POST and GET), GraphiQL at `/` and `/graphiql`, `/health`,
//! `/ready` and the admin cache endpoints existing tools call.

use std::sync::Arc;
use std::time::Instant;

use async_graphql::http::GraphiQLSource;
use async_graphql_axum::{GraphQLRequest, GraphQLResponse};
use axum::extract::Query;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
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
        state,
    };
    Router::new()
        .route("/graphql", post(graphql_post).get(graphql_get))
        .route("/", get(graphiql))
        .route("/graphiql", get(graphiql))
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/admin/cache/stats", get(cache_stats))
        .route("/admin/cache/refresh", post(cache_refresh))
        .route("/admin/cache/warm", post(cache_warm))
        .route("/admin/cache/test", get(cache_test))
        .layer(RequestBodyLimitLayer::new(settings.body_limit_bytes))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            settings.request_timeout,
        ))
        .layer(TraceLayer::new_for_http())
        .with_state(app)
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
    request: GraphQLRequest,
) -> Response {
    answer(&app, &headers, request.into_inner()).await
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
    if let Err(e) = app.state.sync_version(false).await {
        tracing::error!(error = %e, "cannot read the data version");
    }
    // One snapshot for the look-up, the execution and the fill: a response is only ever
    // cached with the version it was computed from.
    let snapshot = app.state.snapshot();
    let key = response_key(&request);
    if let Some(key) = &key
        && let Some(body) = snapshot.caches.responses.get(key).await
    {
        return json_body(body);
    }
    let caller = Caller {
        admin: is_admin(&app.state, headers),
    };
    let request = prepare_at(request, &app.state, snapshot.clone(), caller);
    let response = crate::graphql::execute(&app.schema, request).await;
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

async fn graphiql() -> Html<String> {
    Html(GraphiQLSource::build().endpoint("/graphql").finish())
}

async fn health() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

async fn ready(State(app): State<App>) -> Response {
    let state = &app.state;
    let version = loader::store::data_version(&state.db, state.environment()).await;
    let groups = state.snapshot().index.by_id.len();
    match version {
        Ok(v) if groups > 0 => Json(json!({
            "status": "ready", "data_version": v, "groups": groups,
        }))
        .into_response(),
        Ok(v) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "empty", "data_version": v, "groups": 0})),
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "database unavailable"})),
            )
                .into_response()
        }
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

/// Timed look-ups: SPY's holdings cold (cache entry dropped first) and cached, and AAPL's
/// sector.
async fn cache_test(
    State(app): State<App>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, AppError> {
    require_admin(&app.state, &headers)?;
    let state = &app.state;
    let snapshot = state.snapshot();
    let Some(spy) = snapshot.index.find(entity::GroupType::Etf, "SPY") else {
        return Err(AppError::BadRequest("no ETF SPY is loaded".to_owned()));
    };
    snapshot.caches.groups.invalidate(&spy.id).await;
    let clock = Instant::now();
    let cold = state.group_members(&snapshot, &[spy.id]).await?;
    let cold_us = clock.elapsed().as_secs_f64() * 1e6;
    let clock = Instant::now();
    let warm = state.group_members(&snapshot, &[spy.id]).await?;
    let warm_us = clock.elapsed().as_secs_f64() * 1e6;
    let clock = Instant::now();
    let aapl = state.stock_members(&snapshot, &["AAPL".to_owned()]).await?;
    let sector_us = clock.elapsed().as_secs_f64() * 1e6;
    let sector = aapl
        .get("AAPL")
        .and_then(|list| {
            list.iter()
                .find(|m| m.group.group_type == entity::GroupType::Sector.as_str())
                .map(|m| m.group.name.clone())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    Ok(Json(json!({
        "spy_holdings": cold.get(&spy.id).map_or(0, |l| l.len()),
        "spy_cold_us": cold_us,
        "spy_cached_us": warm_us,
        "cached_matches_cold": cold.get(&spy.id).map(|l| l.len()) == warm.get(&spy.id).map(|l| l.len()),
        "aapl_sector": sector,
        "aapl_sector_us": sector_us,
    })))
}

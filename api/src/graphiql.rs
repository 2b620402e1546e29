//! GraphiQL served from the binary: the page at `/` and `/graphiql`, and the React and
//! GraphiQL builds it loads under `/graphiql/assets/<file>`. The builds are vendored in
//! `api/assets/graphiql/` (its README names versions and sources;
//! `scripts/refresh-graphiql.sh` re-downloads them) and compiled in, so the IDE and its docs
//! explorer work on a machine with no internet access and never load code from a CDN.

use std::sync::LazyLock;

use axum::Router;
use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;

/// Where the vendored files are served.
const ASSETS_PATH: &str = "/graphiql/assets";

/// A vendored file's name carries its package's version, so its content never changes under
/// its URL and browsers may keep it for a year.
const CACHE_FOR_A_YEAR: &str = "public, max-age=31536000, immutable";

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// One vendored file, compiled in.
struct Asset {
    /// Its name under [`ASSETS_PATH`] and in `api/assets/graphiql/`.
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

impl Asset {
    fn url(&self) -> String {
        format!("{ASSETS_PATH}/{}", self.name)
    }
}

macro_rules! vendored {
    ($name:literal, $content_type:expr) => {
        Asset {
            name: $name,
            content_type: $content_type,
            body: include_bytes!(concat!("../assets/graphiql/", $name)),
        }
    };
}

// The pinned versions: keep these names in step with `scripts/refresh-graphiql.sh`.
static REACT: Asset = vendored!("react-18.3.1.production.min.js", JS);
static REACT_DOM: Asset = vendored!("react-dom-18.3.1.production.min.js", JS);
static GRAPHIQL: Asset = vendored!("graphiql-3.9.0.min.js", JS);
static GRAPHIQL_CSS: Asset = vendored!("graphiql-3.9.0.min.css", CSS);

static ASSETS: [&Asset; 4] = [&REACT, &REACT_DOM, &GRAPHIQL, &GRAPHIQL_CSS];

/// Starts GraphiQL on `/graphql` of the page's own origin, with the variables and headers
/// editors shown (mutations and admin fields need `Authorization: Bearer <token>`).
const START: &str = r#"
ReactDOM.createRoot(document.getElementById("graphiql")).render(
  React.createElement(GraphiQL, {
    fetcher: GraphiQL.createFetcher({ url: new URL("/graphql", window.location.href).href }),
    defaultEditorToolsVisibility: true,
  }),
);
"#;

/// The page, written once. The empty `data:` icon keeps browsers from asking for
/// `/favicon.ico`.
static PAGE: LazyLock<String> = LazyLock::new(|| {
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="robots" content="noindex">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>holdgraph GraphiQL</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="{css}">
<style>body {{ margin: 0; height: 100%; overflow: hidden; }} #graphiql {{ height: 100vh; }}</style>
</head>
<body>
<div id="graphiql">Loading GraphiQL…</div>
<noscript>GraphiQL needs JavaScript. The API is <code>POST /graphql</code>.</noscript>
<script src="{react}"></script>
<script src="{react_dom}"></script>
<script src="{graphiql}"></script>
<script>{START}</script>
</body>
</html>
"#,
        css = GRAPHIQL_CSS.url(),
        react = REACT.url(),
        react_dom = REACT_DOM.url(),
        graphiql = GRAPHIQL.url(),
    )
});

/// The GraphiQL routes, for the application's router to merge.
pub(crate) fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(page))
        .route("/graphiql", get(page))
        .route(&format!("{ASSETS_PATH}/{{file}}"), get(asset))
}

/// The page is not cached: a new release names new asset files.
async fn page() -> Response {
    ([(header::CACHE_CONTROL, "no-cache")], Html(PAGE.as_str())).into_response()
}

/// A vendored file, or 404 (which the router's error layer answers as JSON).
async fn asset(Path(file): Path<String>) -> Response {
    let Some(asset) = ASSETS.iter().find(|a| a.name == file) else {
        return (StatusCode::NOT_FOUND, "no such GraphiQL asset").into_response();
    };
    (
        [
            (header::CONTENT_TYPE, asset.content_type),
            (header::CACHE_CONTROL, CACHE_FOR_A_YEAR),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        asset.body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    use super::*;

    async fn get(path: &str) -> Response {
        routes::<()>()
            .oneshot(Request::get(path).body(Body::empty()).expect("request"))
            .await
            .expect("response")
    }

    fn header_of(response: &Response, name: header::HeaderName) -> &str {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The `src` and `href` values of the page, in order.
    fn links(page: &str) -> Vec<&str> {
        ["src=\"", "href=\""]
            .iter()
            .flat_map(|attr| page.split(attr).skip(1))
            .filter_map(|rest| rest.split('"').next())
            .collect()
    }

    #[tokio::test]
    async fn the_page_loads_every_vendored_file_and_nothing_from_another_origin() {
        for path in ["/", "/graphiql"] {
            let response = get(path).await;
            assert_eq!(response.status(), StatusCode::OK, "{path}");
            assert!(header_of(&response, header::CONTENT_TYPE).starts_with("text/html"));
            assert_eq!(header_of(&response, header::CACHE_CONTROL), "no-cache");
        }
        let links = links(&PAGE);
        let mut served: Vec<String> = ASSETS.iter().map(|a| a.url()).collect();
        let mut loaded: Vec<String> = links
            .iter()
            .filter(|l| !l.starts_with("data:"))
            .map(|l| (*l).to_owned())
            .collect();
        served.sort();
        loaded.sort();
        assert_eq!(loaded, served, "the page loads exactly the vendored files");
        assert!(
            links
                .iter()
                .all(|l| l.starts_with(ASSETS_PATH) || l.starts_with("data:")),
            "{links:?}"
        );
    }

    #[tokio::test]
    async fn each_file_is_served_whole_with_its_type_and_a_year_of_cache() {
        for asset in ASSETS {
            let response = get(&asset.url()).await;
            assert_eq!(response.status(), StatusCode::OK, "{}", asset.name);
            assert_eq!(
                header_of(&response, header::CONTENT_TYPE),
                asset.content_type
            );
            assert_eq!(
                header_of(&response, header::CACHE_CONTROL),
                CACHE_FOR_A_YEAR
            );
            let body = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .expect("body");
            assert!(!body.is_empty() && body == asset.body, "{}", asset.name);
        }
    }

    #[tokio::test]
    async fn an_unknown_file_is_not_found() {
        let response = get(&format!("{ASSETS_PATH}/graphiql-0.0.0.min.js")).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
    }
}

//! An axum app behind mcp-shield, with the admin API mounted beside it.
//!
//! ```sh
//! SECURITY_ADMIN_TOKEN=dev-token cargo run -p mcp-shield --example axum_app
//! curl -s localhost:3000/hello
//! curl -s localhost:3000/api/security/ip/blacklist -H 'Authorization: Bearer dev-token' \
//!      -H 'Content-Type: application/json' -d '{"ip":"127.0.0.1","ttl_seconds":10}'
//! curl -s localhost:3000/hello     # 403 ip_blocked for ten seconds
//! ```

use std::net::SocketAddr;

use axum::routing::get;
use axum::Router;
use mcp_shield::{ConfigOverrides, SecuritySystem};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The environment (SECURITY_*) applies first; these overrides win over it.
    let security = SecuritySystem::init(
        ConfigOverrides::new()
            .set("ENABLE_RATE_LIMITING", true)
            .set("RATE_LIMIT_GLOBAL_CAPACITY", 2000)
            .set("BLACKLIST", "203.0.113.0/24"),
    )
    .await?;
    if security.admin_token_generated() {
        println!("admin token: {}", security.admin_token());
    }

    let app = Router::new()
        .route("/hello", get(|| async { "hello from behind mcp-shield\n" }))
        .merge(security.admin_router())
        .layer(security.layer());

    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("listening on http://{}", listener.local_addr()?);
    // The layer reads the client address from ConnectInfo: serve with it.
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await?;
    Ok(())
}

//! Liveness and readiness.

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::State;
use axum::http::{StatusCode, Version};
use axum::response::{IntoResponse, Response};

use super::AppState;
use crate::source::PolicyStore;

/// Readiness: TLS and a first policy loaded, the certificate in use not expired, and not
/// shutting down.
#[derive(Default)]
pub struct Readiness {
    pub tls_loaded: AtomicBool,
    /// The certificate in use has passed its notAfter (every TLS client refuses it).
    pub tls_expired: AtomicBool,
    pub shutting_down: AtomicBool,
}

impl Readiness {
    pub fn check(&self, policies: &PolicyStore) -> Result<(), Cow<'static, str>> {
        if self.shutting_down.load(Ordering::Acquire) {
            Err("shutting down".into())
        } else if !self.tls_loaded.load(Ordering::Acquire) {
            Err("TLS certificate not loaded".into())
        } else if self.tls_expired.load(Ordering::Acquire) {
            Err("TLS certificate expired".into())
        } else if !policies.is_loaded() {
            // No last good policy yet: say why, when the source sent one that was refused.
            Err(match policies.rejection() {
                Some(e) => format!("policy invalid: {e}").into(),
                None => "policy not loaded yet".into(),
            })
        } else {
            Ok(())
        }
    }
}

pub async fn livez() -> &'static str {
    "ok\n"
}

pub async fn readyz(State(st): State<AppState>) -> Response {
    match st.ready.check(&st.policies) {
        Ok(()) => (StatusCode::OK, "ok\n").into_response(),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        )
            .into_response(),
    }
}

/// `/livez` on the TLS port (kubelet HTTPS probes): with `Connection: close` while draining.
pub async fn tls_livez(State(st): State<AppState>, version: Version) -> Response {
    let mut res = livez().await.into_response();
    super::drain::close_when_draining(&st, version, &mut res);
    res
}

/// `/readyz` on the TLS port: with `Connection: close` while draining.
pub async fn tls_readyz(State(st): State<AppState>, version: Version) -> Response {
    let mut res = readyz(State(st.clone())).await;
    super::drain::close_when_draining(&st, version, &mut res);
    res
}

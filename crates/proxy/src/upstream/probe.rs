//! The active health checks' client: the upstream connector (so an
//! `https://` upstream is checked with the same [`UpstreamTls`] settings as
//! traffic reaches it with), its own small pool, and `Host` from the URL.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Uri};
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::reuse::TrackingConnector;
use super::tls::UpstreamTls;
use crate::config::Config;

/// Checks an upstream with a GET; see [`meridian_balance::Probe`].
#[derive(Clone)]
pub struct HealthProbe {
    client: Client<TrackingConnector, Empty<Bytes>>,
}

impl HealthProbe {
    /// A probe with `config`'s connect timeout and TLS settings.
    pub fn new(config: &Config) -> Self {
        HealthProbe::with_tls(config.connect_timeout, Arc::clone(&config.upstream_trust))
    }

    pub(crate) fn with_tls(connect_timeout: Duration, tls: Arc<UpstreamTls>) -> Self {
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(1)
            .build(TrackingConnector::new(connect_timeout, tls));
        HealthProbe { client }
    }
}

impl meridian_balance::Probe for HealthProbe {
    fn check<'a>(
        &'a self,
        url: &'a str,
        timeout: Duration,
    ) -> Pin<Box<dyn Future<Output = bool> + Send + 'a>> {
        Box::pin(async move {
            let Ok(uri) = url.parse::<Uri>() else {
                return false;
            };
            let mut req = Request::new(Empty::new());
            *req.uri_mut() = uri;
            let answered = tokio::time::timeout(timeout, async {
                let response = self.client.request(req).await.ok()?;
                let ok = response.status().is_success();
                // Read the (small) body so the connection can be reused; a
                // check that cannot is still answered.
                let _ = http_body_util::BodyExt::collect(http_body_util::Limited::new(
                    response.into_body(),
                    64 << 10,
                ))
                .await;
                Some(ok)
            })
            .await;
            matches!(answered, Ok(Some(true)))
        })
    }
}

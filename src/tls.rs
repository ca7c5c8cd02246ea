//! TLS for outgoing connections (Slack, Twilio, SMTP, scrape targets): rustls with
//! the `ring` provider, one backend for the whole process.

/// Installs `ring` as the process's rustls provider, once. reqwest is built with
/// `rustls-no-provider` and panics when a client is built before this has run.
pub fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // An error means another provider is already installed: that one serves.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// A client builder for outgoing HTTP, with the provider in place.
pub fn http_client() -> reqwest::ClientBuilder {
    install_crypto_provider();
    reqwest::Client::builder()
}

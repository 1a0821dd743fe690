//! TLS for every HTTPS connection cfdr makes (Cloudflare's API, R2's S3 endpoint, an S3
//! repository, a chat webhook): rustls on the `ring` provider, installed once as the process
//! default before the first client is built (reqwest takes it from there).

/// Installs the `ring` provider as rustls's process default, once; a default someone else
/// installed first is kept.
pub fn install() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_client_builds_with_the_provider_installed() {
        super::install();
        assert!(rustls::crypto::CryptoProvider::get_default().is_some());
        crate::cloudflare::http().build().expect("a client");
    }
}

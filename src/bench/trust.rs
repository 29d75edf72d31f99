//! Whom the load generator trusts on `https://` endpoints (`--ca-file`): the same certificates
//! for its load connections (rustls over hyper) and for its probes (reqwest).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::CertificateDer;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

/// Plain HTTP only (the default), or TLS trusting the certificates of a CA file.
#[derive(Clone, Default)]
pub struct Trust {
    tls: Option<(TlsConnector, Vec<reqwest::Certificate>)>,
}

impl std::fmt::Debug for Trust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.tls.is_some() {
            "Trust(CA file)"
        } else {
            "Trust(plain HTTP)"
        })
    }
}

impl Trust {
    /// Trusts the certificates in the PEM file `ca` (the nodes' own certificate, or their CA).
    pub fn ca_file(ca: &Path) -> Result<Trust, String> {
        let why = |e: &dyn std::fmt::Display| format!("--ca-file {}: {e}", ca.display());
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(ca)
            .and_then(|certs| certs.collect())
            .map_err(|e| why(&e))?;
        if certs.is_empty() {
            return Err(why(&"no certificate in it"));
        }
        let mut roots = RootCertStore::empty();
        let mut for_reqwest = Vec::new();
        for cert in certs {
            for_reqwest.push(reqwest::Certificate::from_der(&cert).map_err(|e| why(&e))?);
            roots.add(cert).map_err(|e| why(&e))?;
        }
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| why(&e))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Trust {
            tls: Some((TlsConnector::from(Arc::new(config)), for_reqwest)),
        })
    }

    /// The connector for `https://` endpoints; None when no CA was given.
    pub fn connector(&self) -> Option<&TlsConnector> {
        self.tls.as_ref().map(|(c, _)| c)
    }

    /// A reqwest client (for probes) with this trust and timeout.
    pub fn http(&self, timeout: Duration) -> reqwest::Client {
        let builder = reqwest::Client::builder().timeout(timeout);
        let certs = self.tls.iter().flat_map(|(_, certs)| certs.iter().cloned());
        certs
            .fold(builder, |b, c| b.add_root_certificate(c))
            .build()
            .expect("an HTTP client")
    }
}

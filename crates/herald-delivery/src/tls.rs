//! TLS for every call Herald makes (webhook attempts, sink handshakes, OAuth token requests,
//! workflow actions): the platform's trusted roots, plus the roots of `[delivery] ca_file`
//! for sinks whose certificates a private CA signed. Built once at start, shared by all.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls_platform_verifier::Verifier;

/// The client TLS configuration; `ca_file` is a PEM bundle of extra trusted roots.
pub fn client_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, String> {
    let extra_roots = match ca_file {
        Some(path) => read_roots(path)?,
        None => Vec::new(),
    };
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = Verifier::new_with_extra_roots(extra_roots, provider.clone())
        .map_err(|e| format!("cannot set up certificate verification: {e}"))?;
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("cannot set up TLS: {e}"))?
        // `dangerous` is only where rustls keeps custom verifiers: this one is the platform's.
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth())
}

/// A reqwest client builder on `tls` (for the calls that are not webhook attempts). It
/// connects directly, as webhook attempts do: one sink never sees two network paths.
pub fn reqwest_builder(tls: &rustls::ClientConfig) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls.clone())
        .no_proxy()
        .user_agent(concat!("herald/", env!("CARGO_PKG_VERSION")))
}

fn read_roots(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let shown = path.display();
    let roots = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("cannot read ca_file {shown}: {e}"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("ca_file {shown} is not a PEM certificate bundle: {e}"))?;
    if roots.is_empty() {
        return Err(format!(
            "ca_file {shown} holds no PEM certificate (-----BEGIN CERTIFICATE-----)"
        ));
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(name: &str, text: &str) -> std::path::PathBuf {
        let path = std::env::temp_dir().join(format!("herald-tls-{}-{name}", std::process::id()));
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn platform_roots_alone_work() {
        client_config(None).unwrap();
    }

    #[test]
    fn a_missing_or_empty_ca_file_is_refused_with_its_name() {
        let e = client_config(Some(Path::new("/nonexistent/ca.pem"))).unwrap_err();
        assert!(e.contains("cannot read ca_file /nonexistent/ca.pem"), "{e}");
        let empty = write("empty.pem", "just text\n");
        let e = client_config(Some(&empty)).unwrap_err();
        assert!(e.contains("holds no PEM certificate"), "{e}");
        let broken = write(
            "broken.pem",
            "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n",
        );
        let e = client_config(Some(&broken)).unwrap_err();
        assert!(e.contains("not a PEM certificate bundle"), "{e}");
    }
}

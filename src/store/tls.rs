//! TLS to the shared backends on rustls (ring, the provider the upstream client uses). Postgres
//! follows libpq's `sslmode` (`disable | prefer | require | verify-ca | verify-full`, default
//! `prefer`) and `sslrootcert` in the connection string; Redis takes `rediss://` (the redis
//! crate's rustls support). Roots are the system's (rustls-native-certs, which honours
//! `SSL_CERT_FILE` / `SSL_CERT_DIR`), or the `sslrootcert` file.
//!
//! Invariants, as libpq defines the modes: `verify-full` checks the chain and the host name;
//! `verify-ca` the chain only; `require` and `prefer` encrypt without checking, except that
//! `require` with an `sslrootcert` checks the chain (libpq's compatibility rule); `prefer` falls
//! back to plain text when the server has no TLS, every other mode but `disable` refuses then.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, Error as TlsError, RootCertStore, SignatureScheme,
};

/// libpq's `sslmode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

/// A Postgres connection string with the TLS settings taken out (the driver knows neither
/// `verify-*` nor `sslrootcert`), and those settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PgTls {
    /// What the driver parses: the string without `sslmode` and `sslrootcert`.
    pub conn: String,
    pub mode: SslMode,
    /// A PEM file of the CA certificates to trust instead of the system's.
    pub root_cert: Option<String>,
}

fn parse_mode(v: &str) -> Result<SslMode, String> {
    Ok(match v {
        "disable" => SslMode::Disable,
        "prefer" | "allow" => SslMode::Prefer,
        "require" => SslMode::Require,
        "verify-ca" => SslMode::VerifyCa,
        "verify-full" => SslMode::VerifyFull,
        other => {
            return Err(format!(
                "sslmode `{other}` is not one of disable, allow, prefer, require, verify-ca, verify-full"
            ))
        }
    })
}

/// Splits `sslmode` and `sslrootcert` out of a `postgres://` URL or a `key=value` string.
pub fn split_pg(conn: &str) -> Result<PgTls, String> {
    let (mut mode, mut root_cert) = (SslMode::Prefer, None);
    let mut take = |k: &str, v: &str| -> Result<bool, String> {
        match k {
            "sslmode" => mode = parse_mode(v)?,
            "sslrootcert" => root_cert = Some(v.to_string()),
            _ => return Ok(false),
        }
        Ok(true)
    };
    let rest = if conn.starts_with("postgres://") || conn.starts_with("postgresql://") {
        let (base, query) = conn.split_once('?').unwrap_or((conn, ""));
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            if !take(k, &percent_decode(v))? {
                kept.push(pair);
            }
        }
        if kept.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", kept.join("&"))
        }
    } else {
        let mut kept = Vec::new();
        for token in conn.split_whitespace() {
            let (k, v) = token.split_once('=').unwrap_or((token, ""));
            if !take(k, v.trim_matches('\''))? {
                kept.push(token);
            }
        }
        kept.join(" ")
    };
    Ok(PgTls { conn: rest, mode, root_cert })
}

fn percent_decode(v: &str) -> String {
    let bytes = v.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(h), Some(l)) => {
                out.push(u8::try_from(h * 16 + l).unwrap_or(b'?'));
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl PgTls {
    /// The driver's mode: it negotiates TLS; who is trusted is [`client_config`](Self::client_config)'s.
    #[must_use]
    pub fn driver_mode(&self) -> postgres::config::SslMode {
        match self.mode {
            SslMode::Disable => postgres::config::SslMode::Disable,
            SslMode::Prefer => postgres::config::SslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => postgres::config::SslMode::Require,
        }
    }

    /// The rustls configuration the mode asks for (reads the root certificates).
    pub fn client_config(&self) -> Result<ClientConfig, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS setup: {e}"))?;
        let check = match (self.mode, &self.root_cert) {
            (SslMode::VerifyFull, _) => Check::Full,
            (SslMode::VerifyCa, _) | (SslMode::Require, Some(_)) => Check::Chain,
            _ => Check::Nothing,
        };
        let config = match check {
            Check::Nothing => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(Unchecked(Arc::clone(&provider))))
                .with_no_client_auth(),
            Check::Full => builder.with_root_certificates(self.roots()?).with_no_client_auth(),
            Check::Chain => {
                let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(self.roots()?), provider)
                    .build()
                    .map_err(|e| format!("TLS setup: {e}"))?;
                builder.dangerous().with_custom_certificate_verifier(Arc::new(ChainOnly(inner))).with_no_client_auth()
            }
        };
        Ok(config)
    }

    fn roots(&self) -> Result<RootCertStore, String> {
        let mut roots = RootCertStore::empty();
        match &self.root_cert {
            Some(path) => {
                let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                    .and_then(Iterator::collect)
                    .map_err(|e| format!("cannot read sslrootcert {path}: {e}"))?;
                let (added, _) = roots.add_parsable_certificates(certs);
                if added == 0 {
                    return Err(format!("sslrootcert {path} holds no usable certificate"));
                }
            }
            None => {
                let found = rustls_native_certs::load_native_certs();
                roots.add_parsable_certificates(found.certs);
                if roots.is_empty() {
                    return Err("no system root certificates found (install ca-certificates, set SSL_CERT_FILE, or give sslrootcert)".into());
                }
            }
        }
        Ok(roots)
    }
}

enum Check {
    Nothing,
    Chain,
    Full,
}

/// `verify-ca`: the chain must lead to a trusted root; the name is not checked.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        match self.0.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(TlsError::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// `prefer` / `require`: encrypted, the certificate unchecked (libpq's meaning of those modes);
/// the handshake signatures are still verified.
#[derive(Debug)]
struct Unchecked(Arc<CryptoProvider>);

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslmode_and_sslrootcert_are_taken_out_of_both_forms() {
        let cases = [
            ("postgres://u:p@db:5432/x", "postgres://u:p@db:5432/x", SslMode::Prefer, None),
            (
                "postgres://u:p@db/x?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&application_name=a",
                "postgres://u:p@db/x?application_name=a",
                SslMode::VerifyFull,
                Some("/etc/ca.pem"),
            ),
            ("postgresql://db/x?sslmode=disable", "postgresql://db/x", SslMode::Disable, None),
            ("postgres://db/x?sslmode=require", "postgres://db/x", SslMode::Require, None),
            (
                "host=db user=u sslmode=verify-ca sslrootcert='/ca.pem' dbname=x",
                "host=db user=u dbname=x",
                SslMode::VerifyCa,
                Some("/ca.pem"),
            ),
        ];
        for (conn, rest, mode, root) in cases {
            let got = split_pg(conn).unwrap();
            assert_eq!((got.conn.as_str(), got.mode, got.root_cert.as_deref()), (rest, mode, root), "{conn}");
        }
        assert!(split_pg("postgres://db/x?sslmode=verify").unwrap_err().contains("verify-full"));
        let driver = |m| PgTls { conn: String::new(), mode: m, root_cert: None }.driver_mode();
        assert_eq!(driver(SslMode::VerifyCa), postgres::config::SslMode::Require);
        assert_eq!(driver(SslMode::Prefer), postgres::config::SslMode::Prefer);
        assert_eq!(driver(SslMode::Disable), postgres::config::SslMode::Disable);
    }

    #[test]
    fn a_missing_root_file_is_a_clear_error() {
        let tls =
            PgTls { conn: String::new(), mode: SslMode::VerifyFull, root_cert: Some("/nonexistent/ca.pem".into()) };
        assert!(tls.client_config().unwrap_err().contains("cannot read sslrootcert /nonexistent/ca.pem"));
        let unchecked = PgTls { conn: String::new(), mode: SslMode::Require, root_cert: None };
        assert!(unchecked.client_config().is_ok(), "require without a root checks nothing, so needs no roots");
    }
}

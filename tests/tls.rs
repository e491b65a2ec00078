//! TLS to the shared backends (the operations issue, item 1): Postgres `sslmode` with
//! `sslrootcert`, Redis `rediss://` with `SSL_CERT_FILE`; verification that refuses a wrong CA or
//! host name; the gateway running on both over TLS. The conformance suite also runs once over TLS
//! (`store::backends`).

use prodex::store::postgres::PgStore;
use prodex::store::redis::RedisStore;
use prodex::store::Store;
use serde_json::json;

use crate::store::{tls_file, tls_path};
use crate::support::admin::call;
use crate::support::mock::Mock;
use crate::support::servers::{PgServer, RedisServer};
use crate::support::{Gateway, Opts};

fn pg_url(host: &str, port: u16, query: &str) -> String {
    format!("postgres://postgres@{host}:{port}/postgres?{query}")
}

#[test]
fn postgres_sslmodes_verify_the_chain_and_the_name_as_libpq_does() {
    let tls = PgServer::start_tls(&tls_path("server.pem"), &tls_path("server.key"));
    let ca = tls_path("ca.pem").display().to_string();
    let other = tls_path("other-ca.pem").display().to_string();
    let open = |url: String| PgStore::open(&url, 1).map(|s| s.ping());
    // verify-full: the chain and the name.
    assert!(open(pg_url("localhost", tls.port, &format!("sslmode=verify-full&sslrootcert={ca}"))).is_ok());
    let wrong_ca = open(pg_url("localhost", tls.port, &format!("sslmode=verify-full&sslrootcert={other}")));
    assert!(wrong_ca.is_err(), "a certificate from another CA is refused");
    let wrong_name = open(pg_url("127.0.0.2", tls.port, &format!("sslmode=verify-full&sslrootcert={ca}")));
    assert!(wrong_name.is_err(), "a certificate for another name is refused");
    // verify-ca: the chain only.
    assert!(open(pg_url("127.0.0.2", tls.port, &format!("sslmode=verify-ca&sslrootcert={ca}"))).is_ok());
    assert!(open(pg_url("127.0.0.2", tls.port, &format!("sslmode=verify-ca&sslrootcert={other}"))).is_err());
    // require: encrypted, unchecked (libpq), unless a root is given.
    assert!(open(pg_url("127.0.0.2", tls.port, "sslmode=require")).is_ok());
    assert!(open(pg_url("localhost", tls.port, &format!("sslmode=require&sslrootcert={other}"))).is_err());
    // The key=value form works too.
    let kv =
        format!("host=localhost port={} user=postgres dbname=postgres sslmode=verify-full sslrootcert={ca}", tls.port);
    assert!(open(kv).is_ok());
    // A server without TLS: require refuses, prefer (the default) falls back to plain text.
    let plain = PgServer::start();
    assert!(open(pg_url("127.0.0.1", plain.port, "sslmode=require")).is_err(), "require never sends plain text");
    assert!(open(pg_url("127.0.0.1", plain.port, "sslmode=prefer")).is_ok());
    assert!(open(pg_url("127.0.0.1", plain.port, "sslmode=disable")).is_ok());
}

#[test]
fn redis_tls_verifies_the_chain_and_the_name() {
    let tls = RedisServer::start_tls(&tls_path("server.pem"), &tls_path("server.key"));
    let open = |host: &str, ca: &str| {
        RedisStore::open_with_root(&format!("rediss://{host}:{}/", tls.port), 1, Some(tls_file(ca)))
    };
    assert!(open("localhost", "ca.pem").is_ok());
    assert!(open("localhost", "other-ca.pem").is_err(), "a certificate from another CA is refused");
    assert!(open("127.0.0.2", "ca.pem").is_err(), "a certificate for another name is refused");
    let plain = RedisStore::open(&format!("redis://127.0.0.1:{}/", tls.port), 1);
    assert!(plain.is_err(), "a TLS-only server does not answer plain text");
}

/// The gateway itself on Postgres and on Redis over TLS: the private CA comes from the Postgres
/// URL's `sslrootcert` and, for Redis, from `SSL_CERT_FILE`; a call is admitted and recorded.
#[test]
fn the_gateway_runs_on_both_backends_over_tls() {
    let pg = PgServer::start_tls(&tls_path("server.pem"), &tls_path("server.key"));
    let redis = RedisServer::start_tls(&tls_path("server.pem"), &tls_path("server.key"));
    let ca = tls_path("ca.pem").display().to_string();
    let mock = Mock::start();
    let master = "master-token-tls-0123456789";
    let backends = [
        (
            "postgres",
            "PRODEX_GATEWAY_POSTGRES_URL",
            pg_url("localhost", pg.port, &format!("sslmode=verify-full&sslrootcert={ca}")),
            None,
        ),
        ("redis", "PRODEX_GATEWAY_REDIS_URL", format!("rediss://localhost:{}/", redis.port), Some(ca.clone())),
    ];
    for (backend, var, url, cert_file) in backends {
        let mut env = vec![
            ("PRODEX_GATEWAY_TOKEN", master.to_string()),
            ("PRODEX_GATEWAY_STATE_BACKEND", backend.to_string()),
            (var, url),
        ];
        if let Some(f) = cert_file {
            env.push(("SSL_CERT_FILE", f));
        }
        let gw = Gateway::start(Opts { base_url: Some(mock.base_url()), env, ..Opts::default() });
        let token = crate::support::admin::create_key(
            &gw,
            master,
            &json!({"name": format!("tls-{backend}"), "budget_usd": 1.0}),
        );
        let body = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]});
        let r = gw.post_json("/v1/chat/completions", &[("authorization", &format!("Bearer {token}"))], &body);
        assert_eq!(r.status, 200, "{backend}: {}", r.text());
        let rows = call(&gw, master, "GET", "ledger", None, &[]).json();
        let mine = rows["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| {
                r["key_name"] == format!("tls-{backend}") && r["route"] == "chat.completions" && r["status"] == 200
            })
            .count();
        assert_eq!(mine, 1, "{backend}: the call's row is in the store over TLS: {rows}");
    }
    // Without the private CA the Redis server is not trusted: the gateway refuses to start.
    let home = crate::support::TempDir::new("tls-refused");
    let out = std::process::Command::new(crate::support::bin())
        .env_clear()
        .env("PRODEX_HOME", &home.0)
        .env("PRODEX_GATEWAY_STATE_BACKEND", "redis")
        .env("PRODEX_GATEWAY_REDIS_URL", format!("rediss://localhost:{}/", redis.port))
        .env("SSL_CERT_FILE", tls_path("other-ca.pem"))
        .args(["gateway", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "an untrusted Redis certificate stops the start");
}

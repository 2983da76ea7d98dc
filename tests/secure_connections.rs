//! Production connections to NATS, each against a real nats-server set up
//! that way: TLS with a client certificate the server verifies (made here
//! with `openssl`: a CA, a server certificate for 127.0.0.1, a client
//! certificate), and an nkey user. orderd runs an order to its end over
//! each; without the client certificate, or with the wrong nkey, it refuses
//! to start and says why, without printing a secret. And Redis over TLS as
//! an ACL user with only the commands orderd needs.

use std::path::{Path, PathBuf};
use std::process::Command;

use orderd::settings::{SecretUrl, Settings};
use testkit::servers::{NatsOptions, NatsServer, TempDir};
use testkit::{create_body, random_tenant, App, Dispatcher, EventLog, Servers, TestApp};

/// A CA, and a server and a client certificate it signed, in `dir`.
fn certificates(dir: &Path) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl runs (Debian's openssl package)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let key = ["-newkey", "rsa:2048", "-nodes"];
    run(&[
        &["req", "-x509"][..],
        &key,
        &[
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=orderd-test-ca",
        ],
    ]
    .concat());
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .unwrap();
    // An extension makes the certificate X.509 v3, which TLS libraries
    // require (a bare `x509 -req` makes v1).
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
    for (name, cn) in [("server", "localhost"), ("client", "orderd")] {
        let (k, csr, pem) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
        );
        let subject = format!("/CN={cn}");
        run(&[
            &["req"][..],
            &key,
            &["-keyout", &k, "-out", &csr, "-subj", &subject],
        ]
        .concat());
        let mut sign = vec![
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &pem,
            "-days",
            "2",
        ];
        let ext = format!("{name}.ext");
        sign.extend(["-extfile", &ext]);
        run(&sign);
    }
}

/// orderd's settings on `nats` (and the Redis of `servers`), adjusted.
fn settings_on(
    servers: &Servers,
    nats: &NatsServer,
    adjust: impl FnOnce(&mut Settings),
) -> Settings {
    let mut s = servers.settings();
    s.nats.url = SecretUrl::new(nats.url());
    adjust(&mut s);
    s.validate().expect("valid settings");
    s
}

/// Runs one order to EXECUTED through orderd on `settings`.
async fn one_order_to_its_end(servers: Servers, settings: Settings) {
    let options = settings.nats.connect_options().expect("connect options");
    let nats = options
        .connect(settings.nats.url.servers())
        .await
        .expect("the test's client connects the same way");
    let app = App::start(settings, &nats).await;
    let t = TestApp {
        app: Some(app),
        js: async_nats::jetstream::new(nats.clone()),
        nats,
        tenant: random_tenant(),
        servers,
    };
    let mut log = EventLog::subscribe(&t.nats, &t.tenant).await;
    let _dispatch = Dispatcher::start(&t.nats, &t.tenant, testkit::complete_everything()).await;
    let order = t.create(&create_body("SEQUENTIAL", &["PICKUP"])).await;
    log.wait_state(order, "EXECUTED").await;
}

/// What orderd says when it cannot start on `settings`.
async fn refused(settings: Settings) -> String {
    let run = orderd::app::run(settings, std::future::pending());
    match tokio::time::timeout(std::time::Duration::from_secs(20), run).await {
        Ok(Err(e)) => e.to_string(),
        Ok(Ok(())) => panic!("orderd ran"),
        Err(_) => panic!("orderd neither started nor refused in 20 s"),
    }
}

fn file(dir: &Path, name: &str) -> String {
    dir.join(name).display().to_string()
}

#[tokio::test]
async fn tls_with_a_client_certificate() {
    let certs = TempDir::new("orderd-certs").unwrap();
    let dir: PathBuf = certs.path().to_owned();
    certificates(&dir);
    let tls = NatsServer::start(NatsOptions {
        args: [
            "--tls",
            "--tlscert",
            &file(&dir, "server.pem"),
            "--tlskey",
            &file(&dir, "server.key"),
            "--tlsverify",
            "--tlscacert",
            &file(&dir, "ca.pem"),
        ]
        .map(str::to_owned)
        .to_vec(),
        ..NatsOptions::default()
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let servers = Servers::start().await;

    // Without the client certificate the server refuses orderd, which says so.
    let without = settings_on(&servers, &tls, |s| {
        s.nats.tls_ca_file = file(&dir, "ca.pem")
    });
    let why = refused(without).await;
    assert!(why.contains("cannot connect to nats"), "{why}");

    let with = settings_on(&servers, &tls, |s| {
        s.nats.tls_ca_file = file(&dir, "ca.pem");
        s.nats.tls_cert_file = file(&dir, "client.pem");
        s.nats.tls_key_file = file(&dir, "client.key");
    });
    one_order_to_its_end(servers, with).await;
}

#[tokio::test]
async fn an_nkey_user() {
    let user = nkeys::KeyPair::new_user();
    let secrets = TempDir::new("orderd-nkey").unwrap();
    let conf = secrets.path().join("nats.conf");
    std::fs::write(
        &conf,
        format!(
            "authorization {{ users = [ {{ nkey: \"{}\" }} ] }}\n",
            user.public_key()
        ),
    )
    .unwrap();
    let seed = secrets.path().join("orderd.nk");
    std::fs::write(&seed, user.seed().unwrap()).unwrap();
    let other = secrets.path().join("other.nk");
    std::fs::write(&other, nkeys::KeyPair::new_user().seed().unwrap()).unwrap();
    let nats = NatsServer::start(NatsOptions {
        config: Some(conf),
        ..NatsOptions::default()
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let servers = Servers::start().await;

    let wrong = settings_on(&servers, &nats, |s| {
        s.nats.nkey_seed_file = other.display().to_string()
    });
    let why = refused(wrong).await;
    assert!(why.contains("cannot connect to nats"), "{why}");
    assert!(!why.contains("SU"), "no seed in the error: {why}");

    let right = settings_on(&servers, &nats, |s| {
        s.nats.nkey_seed_file = seed.display().to_string()
    });
    one_order_to_its_end(servers, right).await;
}

#[tokio::test]
async fn a_missing_file_is_named_at_start() {
    let mut s = Settings::default();
    s.nats.nkey_seed_file = "/nonexistent/orderd.nk".into();
    let why = s.nats.connect_options().expect_err("refused");
    assert!(
        why.contains("nats.nkey_seed_file") && why.contains("/nonexistent/orderd.nk"),
        "{why}"
    );
    s.nats.tls_cert_file = "client.pem".into();
    let e = s.validate().unwrap_err().to_string();
    assert!(e.contains("nats.tls_cert_file"), "{e}");
}

/// redis-server on a TLS port only, with client certificates verified, the
/// default user off and one ACL user `orderd` allowed only what orderd
/// needs (docs/operations.md); killed on drop.
struct TlsRedis {
    child: std::process::Child,
    port: u16,
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn tls_redis(dir: &Path) -> TlsRedis {
    let port = testkit::servers::free_port();
    std::fs::create_dir_all(dir.join("redis")).unwrap();
    let conf = dir.join("redis.conf");
    std::fs::write(
        &conf,
        format!(
            "port 0\nbind 127.0.0.1\ntls-port {port}\n\
             tls-cert-file {d}/server.pem\ntls-key-file {d}/server.key\ntls-ca-cert-file {d}/ca.pem\n\
             appendonly yes\nsave \"\"\ndir {d}/redis\n\
             user default off\nuser orderd on >orderd-secret-pw ~orderd:* +@read +@write +@scripting +@connection +@transaction +wait +config|get\n",
            d = dir.display()
        ),
    )
    .unwrap();
    // Killed and reaped by its Drop, on every path.
    let redis = TlsRedis {
        child: Command::new("redis-server")
            .arg(&conf)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server starts"),
        port,
    };
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return redis;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("redis-server with TLS did not listen on {port}");
}

#[tokio::test]
async fn redis_over_tls_as_an_acl_user() {
    let certs = TempDir::new("orderd-certs").unwrap();
    let dir: PathBuf = certs.path().to_owned();
    certificates(&dir);
    let redis = tls_redis(&dir).await;
    let servers = Servers::start().await; // its NATS; its own Redis is unused
    let on = |password: &str| {
        let mut s = servers.settings();
        s.redis.url = SecretUrl::new(format!(
            "rediss://orderd:{password}@127.0.0.1:{}",
            redis.port
        ));
        s.redis.tls_ca_file = file(&dir, "ca.pem");
        s.redis.tls_cert_file = file(&dir, "client.pem");
        s.redis.tls_key_file = file(&dir, "client.key");
        s.validate().expect("valid settings");
        s
    };

    // A wrong password stops orderd at start, and the error does not print it.
    let why = refused(on("not-the-password")).await;
    assert!(why.contains("redis"), "{why}");
    assert!(!why.contains("not-the-password"), "{why}");

    let settings = on("orderd-secret-pw");
    one_order_to_its_end(servers, settings).await;
}

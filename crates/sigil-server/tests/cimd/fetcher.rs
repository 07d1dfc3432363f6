//! The outbound fetcher and its document cache over real HTTP, against [`DocServer`]s on
//! 127.0.0.1: every limit, the address rules with loopback off, single-flight, and the
//! cache's lifetimes read from a clock the tests move (no sleeping for minutes).

use super::doc_server::{DocServer, Reply};
use sigil_core::clock::FixedClock;
use sigil_server::outbound::cache::{CachePolicy, DocumentCache, CEILING, FAILURE_TTL, FLOOR};
use sigil_server::outbound::{FetchError, FetchRules, Freshness, Outbound, OutboundSettings};
use std::sync::Arc;
use std::time::{Duration, Instant};

const RULES: FetchRules = FetchRules {
    max_bytes: 5 * 1024,
    require_json: true,
};

fn loopback_fetcher() -> Outbound {
    Outbound::new(OutboundSettings {
        allow_loopback: true,
        ..OutboundSettings::default()
    })
    .expect("fetcher")
}

fn production_fetcher() -> Outbound {
    Outbound::new(OutboundSettings::default()).expect("fetcher")
}

#[tokio::test]
async fn a_json_document_is_fetched_with_its_cache_lifetime() {
    let server = DocServer::start().await;
    server.set(
        "/doc.json",
        Reply::json(r#"{"a":1}"#, &[("Cache-Control", "public, max-age=900")]),
    );
    let fetched = loopback_fetcher()
        .fetch(&server.url("/doc.json"), RULES)
        .await
        .expect("fetched");
    assert_eq!(fetched.body, br#"{"a":1}"#);
    assert_eq!(fetched.freshness, Freshness::MaxAge(900));
    assert!(
        !format!("{fetched:?}").contains("\"a\""),
        "Debug shows no body"
    );
}

#[tokio::test]
async fn other_statuses_content_types_and_every_redirect_are_refused() {
    let server = DocServer::start().await;
    let other = DocServer::start().await;
    other.set("/doc.json", Reply::json("{}", &[]));
    server.set("/elsewhere", Reply::redirect(302, &other.url("/doc.json")));
    server.set("/same-origin", Reply::redirect(301, "/doc.json"));
    server.set("/doc.json", Reply::json("{}", &[]));
    server.set(
        "/html",
        Reply::Full {
            status: 200,
            headers: vec![("Content-Type".into(), "text/html; note=\u{e9}<b>".into())],
            body: b"{}".to_vec(),
            delay: Duration::ZERO,
        },
    );
    server.set(
        "/no-type",
        Reply::Full {
            status: 200,
            headers: vec![],
            body: b"{}".to_vec(),
            delay: Duration::ZERO,
        },
    );
    server.set(
        "/created",
        Reply::Full {
            status: 201,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: b"{}".to_vec(),
            delay: Duration::ZERO,
        },
    );
    let fetcher = loopback_fetcher();
    let fetch = |path: &'static str| {
        let url = server.url(path);
        let fetcher = &fetcher;
        async move { fetcher.fetch(&url, RULES).await.expect_err(path) }
    };
    assert_eq!(fetch("/elsewhere").await, FetchError::Redirect(302));
    assert_eq!(other.hits("/doc.json"), 0, "the redirect was not followed");
    assert_eq!(fetch("/same-origin").await, FetchError::Redirect(301));
    assert_eq!(server.hits("/doc.json"), 0, "nor a same-origin one");
    assert_eq!(fetch("/missing").await, FetchError::Status(404));
    assert_eq!(fetch("/created").await, FetchError::Status(201));
    let FetchError::ContentType(shown) = fetch("/html").await else {
        panic!("content type");
    };
    assert!(
        shown.starts_with("text/html") && !shown.contains('\u{e9}'),
        "escaped: {shown}"
    );
    assert_eq!(
        fetch("/no-type").await,
        FetchError::ContentType("missing".into())
    );
    let text = FetchError::Redirect(302).to_string();
    assert!(text.contains("not followed"), "{text}");
}

#[tokio::test]
async fn a_large_document_is_refused_without_reading_it() {
    let server = DocServer::start().await;
    server.set("/big.json", Reply::json(vec![b' '; 5 * 1024 * 1024], &[]));
    server.set("/endless.json", Reply::Endless);
    server.set("/just-fits.json", Reply::json(vec![b' '; 5 * 1024], &[]));
    server.set("/one-over.json", Reply::json(vec![b' '; 5 * 1024 + 1], &[]));
    let fetcher = loopback_fetcher();
    let started = Instant::now();
    assert_eq!(
        fetcher.fetch(&server.url("/big.json"), RULES).await,
        Err(FetchError::TooLarge(5 * 1024)),
        "Content-Length over the limit"
    );
    // No Content-Length and a body without end: cut at the limit, not read to the end
    // (there is none) nor until the deadline.
    assert_eq!(
        fetcher.fetch(&server.url("/endless.json"), RULES).await,
        Err(FetchError::TooLarge(5 * 1024)),
        "chunked body over the limit"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "refused at once, took {:?}",
        started.elapsed()
    );
    assert!(fetcher
        .fetch(&server.url("/just-fits.json"), RULES)
        .await
        .is_ok());
    assert_eq!(
        fetcher.fetch(&server.url("/one-over.json"), RULES).await,
        Err(FetchError::TooLarge(5 * 1024))
    );
}

#[tokio::test]
async fn a_slow_server_is_cut_off_by_the_total_deadline() {
    let server = DocServer::start().await;
    server.set(
        "/dribble.json",
        Reply::Dribble {
            every: Duration::from_millis(100),
        },
    );
    server.set("/silent.json", Reply::Silent);
    server.set(
        "/late.json",
        Reply::json("{}", &[]).delayed(Duration::from_secs(30)),
    );
    // The production deadline (5 s), for the server that keeps sending.
    let fetcher = loopback_fetcher();
    let started = Instant::now();
    let outcome = fetcher.fetch(&server.url("/dribble.json"), RULES).await;
    let took = started.elapsed();
    assert!(
        matches!(outcome, Err(FetchError::Timeout(_))),
        "{outcome:?}"
    );
    assert!(
        took >= Duration::from_millis(4900) && took < Duration::from_secs(7),
        "cut off at the 5 s deadline, took {took:?}"
    );
    // A shorter deadline for the others, to keep the test quick.
    let quick = Outbound::new(OutboundSettings {
        allow_loopback: true,
        total_timeout: Duration::from_secs(1),
        ..OutboundSettings::default()
    })
    .expect("fetcher");
    for path in ["/silent.json", "/late.json"] {
        let started = Instant::now();
        let outcome = quick.fetch(&server.url(path), RULES).await;
        assert!(
            matches!(outcome, Err(FetchError::Timeout(_))),
            "{path}: {outcome:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(3), "{path}");
    }
}

#[tokio::test]
async fn special_use_addresses_are_refused_without_a_connection() {
    let server = DocServer::start().await;
    server.set("/doc.json", Reply::json("{}", &[]));
    let fetcher = production_fetcher();
    let port = server.port;
    // Loopback over http: not https, and loopback is off.
    assert_eq!(
        fetcher.fetch(&server.url("/doc.json"), RULES).await,
        Err(FetchError::NotHttps)
    );
    for url in [
        format!("https://127.0.0.1:{port}/doc.json"),
        format!("https://[::1]:{port}/doc.json"),
        format!("https://[::ffff:127.0.0.1]:{port}/doc.json"),
        format!("https://2130706433:{port}/doc.json"),
        "https://10.0.0.7/doc.json".to_string(),
        "https://192.168.1.1/doc.json".to_string(),
        "https://169.254.169.254/latest/meta-data/".to_string(),
        "https://[fd00:ec2::254]/latest/meta-data/".to_string(),
        "https://100.100.100.200/latest/meta-data/".to_string(),
        // A name: refused once resolved, before any connection.
        format!("https://localhost:{port}/doc.json"),
        format!("https://LocalHost:{port}/doc.json"),
    ] {
        let outcome = fetcher.fetch(&url, RULES).await;
        let Err(FetchError::ForbiddenAddress { host, reason }) = &outcome else {
            panic!("{url}: {outcome:?}");
        };
        let text = outcome.clone().expect_err("error").to_string();
        assert!(text.contains("special-use"), "{text}");
        assert!(!host.is_empty() && !reason.is_empty(), "{text}");
    }
    assert_eq!(server.hits("/doc.json"), 0, "nothing reached the server");
    // Loopback allowed: the same server answers, but a private address still does not.
    let loopback = loopback_fetcher();
    assert!(loopback
        .fetch(&server.url("/doc.json"), RULES)
        .await
        .is_ok());
    assert!(matches!(
        loopback.fetch("https://169.254.169.254/x", RULES).await,
        Err(FetchError::ForbiddenAddress { .. })
    ));
    assert!(matches!(
        loopback.fetch("http://10.0.0.1/x", RULES).await,
        Err(FetchError::NotHttps)
    ));
}

fn cache(
    outbound: Outbound,
    clock: Arc<FixedClock>,
    policy: CachePolicy,
) -> Arc<DocumentCache<serde_json::Value>> {
    Arc::new(DocumentCache::new(Arc::new(outbound), RULES, policy, clock))
}

fn decode(bytes: &[u8]) -> Result<serde_json::Value, String> {
    serde_json::from_slice(bytes).map_err(|_| "not JSON".to_string())
}

#[tokio::test]
async fn concurrent_requests_for_one_url_make_one_fetch() {
    let server = DocServer::start().await;
    server.set(
        "/doc.json",
        Reply::json(r#"{"n":1}"#, &[]).delayed(Duration::from_millis(300)),
    );
    let clock = Arc::new(FixedClock::new(1_000_000));
    let documents = cache(loopback_fetcher(), clock, CachePolicy::default());
    let url = server.url("/doc.json");
    let mut tasks = Vec::new();
    for _ in 0..25 {
        let documents = documents.clone();
        let url = url.clone();
        tasks.push(tokio::spawn(
            async move { documents.get(&url, decode).await },
        ));
    }
    for task in tasks {
        let document = task.await.expect("task").expect("document");
        assert_eq!(document["n"], 1);
    }
    assert_eq!(server.hits("/doc.json"), 1);
}

#[tokio::test]
async fn the_cache_keeps_max_age_within_the_floor_and_the_ceiling() {
    let server = DocServer::start().await;
    server.set(
        "/hour.json",
        Reply::json("{}", &[("Cache-Control", "max-age=3600")]),
    );
    server.set(
        "/ten-seconds.json",
        Reply::json("{}", &[("Cache-Control", "max-age=10")]),
    );
    server.set(
        "/no-store.json",
        Reply::json("{}", &[("Cache-Control", "no-store")]),
    );
    server.set("/none.json", Reply::json("{}", &[]));
    server.set(
        "/year.json",
        Reply::json("{}", &[("Cache-Control", "max-age=31536000")]),
    );
    let clock = Arc::new(FixedClock::new(1_000_000));
    let documents = cache(loopback_fetcher(), clock.clone(), CachePolicy::default());
    for (path, kept) in [
        ("/hour.json", 3600),
        ("/ten-seconds.json", FLOOR),
        ("/no-store.json", FLOOR),
        ("/none.json", FLOOR),
        ("/year.json", CEILING),
    ] {
        clock.set(1_000_000);
        let url = server.url(path);
        documents.get(&url, decode).await.expect(path);
        clock.advance(kept - 1);
        documents.get(&url, decode).await.expect(path);
        assert_eq!(
            server.hits(path),
            1,
            "{path}: still fresh after {}s",
            kept - 1
        );
        clock.advance(1);
        documents.get(&url, decode).await.expect(path);
        assert_eq!(server.hits(path), 2, "{path}: fetched again after {kept}s");
    }
    // The floor is a setting: a test or a deployment may lower it.
    let short = cache(
        loopback_fetcher(),
        clock.clone(),
        CachePolicy {
            floor: 1,
            ..CachePolicy::default()
        },
    );
    let url = server.url("/ten-seconds.json");
    short.get(&url, decode).await.expect("doc");
    clock.advance(10);
    short.get(&url, decode).await.expect("doc");
    assert_eq!(server.hits("/ten-seconds.json"), 4);
}

#[tokio::test]
async fn a_failure_is_remembered_briefly() {
    let server = DocServer::start().await;
    server.set("/not-json.json", Reply::json("this is not json", &[]));
    let clock = Arc::new(FixedClock::new(1_000_000));
    let documents = cache(loopback_fetcher(), clock.clone(), CachePolicy::default());
    let missing = server.url("/missing.json");
    let broken = server.url("/not-json.json");
    for _ in 0..20 {
        assert_eq!(
            documents.get(&missing, decode).await,
            Err(FetchError::Status(404))
        );
        assert_eq!(
            documents.get(&broken, decode).await,
            Err(FetchError::Invalid("not JSON".into()))
        );
    }
    assert_eq!(server.hits("/missing.json"), 1);
    assert_eq!(server.hits("/not-json.json"), 1);
    clock.advance(FAILURE_TTL - 1);
    let _ = documents.get(&missing, decode).await;
    assert_eq!(server.hits("/missing.json"), 1);
    clock.advance(1);
    server.set("/missing.json", Reply::json("{}", &[]));
    documents.get(&missing, decode).await.expect("there now");
    assert_eq!(server.hits("/missing.json"), 2);
    // A refused URL is remembered too, and never reaches the network.
    let refused = cache(production_fetcher(), clock.clone(), CachePolicy::default());
    for _ in 0..3 {
        assert!(matches!(
            refused.get("https://169.254.169.254/x", decode).await,
            Err(FetchError::ForbiddenAddress { .. })
        ));
    }
}

#[tokio::test]
async fn the_cache_holds_a_bounded_number_of_urls() {
    let server = DocServer::start().await;
    let clock = Arc::new(FixedClock::new(1_000_000));
    let documents = cache(
        loopback_fetcher(),
        clock.clone(),
        CachePolicy {
            max_entries: 5,
            ..CachePolicy::default()
        },
    );
    for n in 0..20 {
        let path = format!("/doc-{n}.json");
        server.set(&path, Reply::json("{}", &[]));
        documents
            .get(&server.url(&path), decode)
            .await
            .expect("doc");
        assert!(documents.len() <= 5, "{} entries", documents.len());
    }
}

#[tokio::test]
async fn too_many_fetches_at_once_are_refused_and_not_remembered() {
    let server = DocServer::start().await;
    server.set(
        "/slow.json",
        Reply::json("{}", &[]).delayed(Duration::from_millis(500)),
    );
    server.set("/other.json", Reply::json("{}", &[]));
    let outbound = Arc::new(
        Outbound::new(OutboundSettings {
            allow_loopback: true,
            max_concurrent: 1,
            ..OutboundSettings::default()
        })
        .expect("fetcher"),
    );
    let clock = Arc::new(FixedClock::new(1_000_000));
    let documents = Arc::new(DocumentCache::new(
        outbound,
        RULES,
        CachePolicy::default(),
        clock,
    ));
    let slow = {
        let documents = documents.clone();
        let url = server.url("/slow.json");
        tokio::spawn(async move { documents.get(&url, decode).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let other = server.url("/other.json");
    assert_eq!(documents.get(&other, decode).await, Err(FetchError::Busy));
    slow.await.expect("task").expect("slow document");
    documents
        .get(&other, decode)
        .await
        .expect("fetched once the slot is free");
}

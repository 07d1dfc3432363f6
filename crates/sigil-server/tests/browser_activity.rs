//! The overview's activity charts in a real browser, with real data from two replicas on
//! one PostgreSQL database: sign-ins that succeed and fail, refreshes, a refresh-token
//! reuse and client_credentials tokens, spread over both replicas. The SVG's bars, the
//! legends, the tables, the exported counts and the replicas' `/metrics` counters must all
//! agree with what the test did. Screenshots in light and dark mode go to
//! `target/tmp/screenshots/activity-*.png`.

mod common;

use common::flows::token;
use common::process::{free_port, Server, Setup, ADMIN_PASSWORD};
use common::{webdriver, TestDb};
use fantoccini::{Client, Locator};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const DANA_PASSWORD: &str = "her long quiet pass phrase";

async fn refresh(base: &str, client: (&str, &str), refresh_token: &str) -> (u16, Value) {
    token(
        base,
        client,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ],
    )
    .await
}

/// The bars of one chart: series name → the sum of its bars' values.
async fn bar_sums(browser: &Client, chart: &str) -> BTreeMap<String, i64> {
    let mut sums = BTreeMap::new();
    let bars = browser
        .find_all(Locator::Css(&format!("#chart-{chart} rect.bar")))
        .await
        .expect("bars");
    for bar in bars {
        let series = bar
            .attr("data-series")
            .await
            .expect("attr")
            .expect("series");
        let value: i64 = bar
            .attr("data-value")
            .await
            .expect("attr")
            .expect("value")
            .parse()
            .expect("a number");
        assert!(value > 0, "no empty bar is drawn");
        *sums.entry(series).or_default() += value;
    }
    sums
}

/// The legend's totals of one chart: series name → total.
async fn legend(browser: &Client, chart: &str) -> BTreeMap<String, i64> {
    let mut totals = BTreeMap::new();
    for total in browser
        .find_all(Locator::Css(&format!("#chart-{chart} [data-total]")))
        .await
        .expect("legend")
    {
        let name = total.attr("data-total").await.expect("attr").expect("name");
        let value: i64 = total.text().await.expect("text").trim().parse().expect("n");
        totals.insert(name, value);
    }
    totals
}

/// The table's total row of one chart, in series order.
async fn table_totals(browser: &Client, chart: &str) -> Vec<i64> {
    let mut totals = Vec::new();
    for cell in browser
        .find_all(Locator::Css(&format!("#chart-{chart} tfoot td")))
        .await
        .expect("table")
    {
        // The table sits in a closed <details>: read its text content, not what is shown.
        let text = cell
            .prop("textContent")
            .await
            .expect("prop")
            .unwrap_or_default();
        totals.push(text.trim().parse().expect("a number"));
    }
    totals
}

fn expected(pairs: &[(&str, i64)]) -> BTreeMap<String, i64> {
    pairs
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(name, n)| (name.to_string(), *n))
        .collect()
}

fn with_zeros(pairs: &[(&str, i64)]) -> BTreeMap<String, i64> {
    pairs
        .iter()
        .map(|(name, n)| (name.to_string(), *n))
        .collect()
}

/// A counter's value in a Prometheus text page.
fn counter(metrics: &str, line_start: &str) -> i64 {
    metrics
        .lines()
        .find(|line| line.starts_with(line_start))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .map(|v| v as i64)
        .unwrap_or(0)
}

async fn metrics_of(base: &str) -> String {
    reqwest::get(format!("{base}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text")
}

/// The page's script result (a fetch from the admin's session, say).
async fn run(browser: &Client, script: &str) -> Value {
    browser.execute(script, vec![]).await.expect("script")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_overview_charts_what_every_replica_counted() {
    let Some(driver_path) = webdriver::chromedriver() else {
        return;
    };
    let Some(db) = TestDb::postgres("activity_charts").await else {
        return;
    };
    let setup = Setup::new(db.url(), tempfile::tempdir().expect("tempdir"));
    setup.sigil(&["migrate"], None);
    let port_a = free_port();
    let issuer = format!("http://127.0.0.1:{port_a}");
    let (metrics_a, metrics_b) = (
        format!("127.0.0.1:{}", free_port()),
        format!("127.0.0.1:{}", free_port()),
    );
    let serve = |metrics: &str| {
        [
            "--issuer".to_string(),
            issuer.clone(),
            "--activity-flush-interval".to_string(),
            "200ms".to_string(),
            "--metrics-bind".to_string(),
            metrics.to_string(),
        ]
    };
    let (serve_a, serve_b) = (serve(&metrics_a), serve(&metrics_b));
    let a = Server::start_on(&setup, &[], &strs(&serve_a), port_a, &[]);
    let b = Server::start_on(&setup, &[], &strs(&serve_b), free_port(), &[]);
    let (a_base, b_base) = (a.base.clone(), b.base.clone());

    setup.sigil(
        &["user", "add", "--username", "dana", "--password-stdin"],
        Some(DANA_PASSWORD),
    );
    let app: Value = serde_json::from_str(&setup.sigil(
        &[
            "client",
            "add",
            "--name",
            "Dana's reports",
            "--grant-types",
            "password,refresh_token,client_credentials",
            "--json",
        ],
        None,
    ))
    .expect("json");
    let app_id = app["client_id"].as_str().expect("id").to_string();
    let app_secret = app["client_secret"].as_str().expect("secret").to_string();
    let app = (app_id.as_str(), app_secret.as_str());

    // Two wrong passwords on replica B, one right one on A.
    for _ in 0..2 {
        let (status, body) = token(
            &b_base,
            app,
            &[
                ("grant_type", "password"),
                ("username", "dana"),
                ("password", "not her password at all"),
            ],
        )
        .await;
        assert_eq!(status, 400, "{body}");
    }
    let (status, tokens) = token(
        &a_base,
        app,
        &[
            ("grant_type", "password"),
            ("username", "dana"),
            ("password", DANA_PASSWORD),
            ("scope", "openid offline_access"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{tokens}");
    let first = tokens["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_string();
    // Two refreshes, one on each replica, then the first token again: a reuse.
    let (status, second) = refresh(&b_base, app, &first).await;
    assert_eq!(status, 200, "{second}");
    let second = second["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_string();
    let (status, third) = refresh(&a_base, app, &second).await;
    assert_eq!(status, 200, "{third}");
    let (status, reuse) = refresh(&a_base, app, &first).await;
    assert_eq!(status, 400, "{reuse}");
    // Five client_credentials tokens: three on A, two on B.
    for base in [&a_base, &a_base, &a_base, &b_base, &b_base] {
        let (status, body) = token(base, app, &[("grant_type", "client_credentials")]).await;
        assert_eq!(status, 200, "{body}");
    }

    // The admin signs in on replica A in a real browser: one more successful sign-in.
    let (_driver, browser, _profile) = webdriver::open(driver_path, "1280,2200").await;
    let shots = webdriver::screenshot_dir();
    browser
        .goto(&format!("{a_base}/admin"))
        .await
        .expect("open");
    webdriver::wait_for_path(&browser, "/login").await;
    for (id, text) in [("username", "admin"), ("password", ADMIN_PASSWORD)] {
        browser
            .find(Locator::Id(id))
            .await
            .expect(id)
            .send_keys(text)
            .await
            .expect("type");
    }
    browser
        .find(Locator::Css("button[type=submit]"))
        .await
        .expect("submit")
        .click()
        .await
        .expect("click");
    webdriver::wait_for_path(&browser, "/admin").await;

    let sign_ins = [("Succeeded", 2), ("Failed", 2)];
    let grants = [
        ("Authorization code", 0),
        ("Refresh token", 2),
        ("Client credentials", 5),
        ("Password", 1),
    ];
    let problems = [
        ("Refresh-token reuse", 1),
        ("Throttled", 0),
        ("Server errors (5xx)", 0),
    ];
    for range in ["24h", "7d"] {
        // Each replica writes its counts every 200 ms: wait until both have.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            browser
                .goto(&format!("{a_base}/admin?range={range}"))
                .await
                .expect("open");
            if legend(&browser, "tokens").await == with_zeros(&grants)
                && legend(&browser, "sign-ins").await == with_zeros(&sign_ins)
                && legend(&browser, "problems").await == with_zeros(&problems)
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the {range} overview never showed the counts: tokens {:?}, sign-ins {:?}, problems {:?}",
                legend(&browser, "tokens").await,
                legend(&browser, "sign-ins").await,
                legend(&browser, "problems").await,
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // The bars add up to the legends, and so does each table's total row.
        for (chart, pairs) in [
            ("sign-ins", &sign_ins[..]),
            ("tokens", &grants[..]),
            ("problems", &problems[..]),
        ] {
            assert_eq!(
                bar_sums(&browser, chart).await,
                expected(pairs),
                "{range} {chart}"
            );
            let totals: Vec<i64> = pairs.iter().map(|(_, n)| *n).collect();
            assert_eq!(
                table_totals(&browser, chart).await,
                totals,
                "{range} {chart}"
            );
        }
        let methods = browser
            .find(Locator::Css("#sign-in-methods tbody tr"))
            .await
            .expect("methods")
            .text()
            .await
            .expect("text");
        assert_eq!(
            methods.split_whitespace().collect::<Vec<_>>(),
            ["Password", "2", "2"]
        );
        let png = browser.screenshot().await.expect("screenshot");
        std::fs::write(shots.join(format!("activity-{range}-light.png")), png).expect("write");
    }

    // Dark mode: the same page, drawn in the dark palette.
    let fill = "return getComputedStyle(document.querySelector('#chart-tokens rect.bar')).fill";
    let light_fill = run(&browser, fill).await;
    webdriver::cdp(
        &browser,
        "Emulation.setEmulatedMedia",
        json!({"features": [{"name": "prefers-color-scheme", "value": "dark"}]}),
    )
    .await;
    browser
        .goto(&format!("{a_base}/admin?range=24h"))
        .await
        .expect("open");
    let dark_fill = run(&browser, fill).await;
    assert_ne!(light_fill, dark_fill, "bars change colour in dark mode");
    let background = run(
        &browser,
        "return getComputedStyle(document.querySelector('.panel')).backgroundColor",
    )
    .await;
    assert_eq!(background, json!("rgb(25, 29, 39)"), "panels are dark");
    let png = browser.screenshot().await.expect("screenshot");
    std::fs::write(shots.join("activity-24h-dark.png"), png).expect("write");

    // The export from the admin's session: the totals and the client's own rows agree.
    let ndjson = run(
        &browser,
        "return fetch('/admin/activity.ndjson').then(r => r.text())",
    )
    .await;
    let mut totals: BTreeMap<(String, String), i64> = BTreeMap::new();
    let mut of_client: BTreeMap<String, i64> = BTreeMap::new();
    let lines: Vec<Value> = ndjson
        .as_str()
        .expect("text")
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect();
    for row in &lines {
        let (metric, label) = (
            row["metric"].as_str().expect("metric"),
            row["label"].as_str().expect("label"),
        );
        let count = row["count"].as_i64().expect("count");
        match row["client_id"].as_str().expect("client") {
            "" => *totals.entry((metric.into(), label.into())).or_default() += count,
            id if id == app_id => *of_client.entry(metric.into()).or_default() += count,
            other => panic!("a count for a client nobody used: {other}"),
        }
    }
    let want: BTreeMap<(String, String), i64> = [
        ("sign_in", "password.ok", 2),
        ("sign_in", "password.failed", 2),
        ("token", "password", 1),
        ("token", "refresh_token", 2),
        ("token", "client_credentials", 5),
        ("refresh_reuse", "", 1),
    ]
    .iter()
    .map(|(m, l, n)| ((m.to_string(), l.to_string()), *n))
    .collect();
    assert_eq!(totals, want, "hourly totals in the export");
    assert_eq!(
        of_client,
        BTreeMap::from([("refresh_reuse".to_string(), 1), ("token".to_string(), 8)])
    );
    let csv = run(
        &browser,
        "return fetch('/admin/activity.csv?grain=minute').then(r => r.text())",
    )
    .await;
    let csv = csv.as_str().expect("text");
    assert!(
        csv.starts_with("time,bucket,grain,metric,label,client_id,count\r\n"),
        "{csv}"
    );
    let minute_total: i64 = csv
        .lines()
        .skip(1)
        .filter_map(|line| line.rsplit(',').next()?.parse::<i64>().ok())
        .sum();
    assert_eq!(
        minute_total,
        2 + 2 + 1 + 2 + 5 + 1,
        "per-minute rows: {csv}"
    );

    // The client's page: its tokens of the day and the week, and when it was last used.
    browser
        .goto(&format!("{a_base}/admin/clients/{app_id}"))
        .await
        .expect("open");
    for (id, want) in [("usage-tokens-day", "8"), ("usage-tokens-week", "8")] {
        let text = browser
            .find(Locator::Id(id))
            .await
            .expect(id)
            .text()
            .await
            .expect("text");
        assert_eq!(text, want, "#{id}");
    }
    let last_used = browser
        .find(Locator::Id("usage-last-used"))
        .await
        .expect("last used")
        .text()
        .await
        .expect("text");
    assert!(
        last_used.starts_with("got a token in the hour from "),
        "{last_used}"
    );
    let png = browser.screenshot().await.expect("screenshot");
    std::fs::write(shots.join("activity-client.png"), png).expect("write");

    // The live sessions: the admin's own, signed in on this browser.
    browser
        .goto(&format!("{a_base}/admin/sessions"))
        .await
        .expect("open");
    let sessions = browser
        .find(Locator::Css("main"))
        .await
        .expect("main")
        .text()
        .await
        .expect("text");
    assert!(sessions.contains("admin"), "{sessions}");
    let png = browser.screenshot().await.expect("screenshot");
    std::fs::write(shots.join("activity-sessions.png"), png).expect("write");

    // The replicas' own counters say the same.
    let (ma, mb) = (
        metrics_of(&format!("http://{metrics_a}")).await,
        metrics_of(&format!("http://{metrics_b}")).await,
    );
    for (grant, n) in [
        ("client_credentials", 5),
        ("refresh_token", 2),
        ("password", 1),
    ] {
        let line = format!("sigil_tokens_issued_total{{grant_type=\"{grant}\"}}");
        assert_eq!(counter(&ma, &line) + counter(&mb, &line), n, "{grant}");
    }
    let reuse = "sigil_refresh_token_reuse_detected_total";
    assert_eq!(counter(&ma, reuse) + counter(&mb, reuse), 1);

    browser.close().await.expect("close");
    a.stop();
    b.stop();
    drop(db);
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

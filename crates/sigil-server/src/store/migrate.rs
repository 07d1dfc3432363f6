//! A small migration runner: numbered SQL files compiled into the binary, applied in order
//! inside one transaction each, recorded in `sigil_migrations`. Files are never edited once
//! released; a change is a new file.

/// One migration: its number, name and SQL.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

/// The migrations of one database kind.
#[derive(Debug, Clone, Copy)]
pub struct Migrations(pub &'static [Migration]);

pub const SQLITE: Migrations = Migrations(&[
    Migration {
        version: 1,
        name: "initial",
        sql: include_str!("../../../../migrations/sqlite/0001_initial.sql"),
    },
    Migration {
        version: 2,
        name: "authorization_codes_and_consents",
        sql: include_str!(
            "../../../../migrations/sqlite/0002_authorization_codes_and_consents.sql"
        ),
    },
    Migration {
        version: 3,
        name: "admin_and_audit_log",
        sql: include_str!("../../../../migrations/sqlite/0003_admin_and_audit_log.sql"),
    },
    Migration {
        version: 4,
        name: "throttling_and_refresh_grace",
        sql: include_str!("../../../../migrations/sqlite/0004_throttling_and_refresh_grace.sql"),
    },
    Migration {
        version: 5,
        name: "accounts",
        sql: include_str!("../../../../migrations/sqlite/0005_accounts.sql"),
    },
    Migration {
        version: 6,
        name: "second_factors",
        sql: include_str!("../../../../migrations/sqlite/0006_second_factors.sql"),
    },
    Migration {
        version: 7,
        name: "federation",
        sql: include_str!("../../../../migrations/sqlite/0007_federation.sql"),
    },
    Migration {
        version: 8,
        name: "browser_apps",
        sql: include_str!("../../../../migrations/sqlite/0008_browser_apps.sql"),
    },
    Migration {
        version: 9,
        name: "third_party_clients",
        sql: include_str!("../../../../migrations/sqlite/0009_third_party_clients.sql"),
    },
    Migration {
        version: 10,
        name: "dpop",
        sql: include_str!("../../../../migrations/sqlite/0010_dpop.sql"),
    },
    Migration {
        version: 11,
        name: "activity",
        sql: include_str!("../../../../migrations/sqlite/0011_activity.sql"),
    },
    Migration {
        version: 12,
        name: "admin_sessions",
        sql: include_str!("../../../../migrations/sqlite/0012_admin_sessions.sql"),
    },
]);

pub const POSTGRES: Migrations = Migrations(&[
    Migration {
        version: 1,
        name: "initial",
        sql: include_str!("../../../../migrations/postgres/0001_initial.sql"),
    },
    Migration {
        version: 2,
        name: "authorization_codes_and_consents",
        sql: include_str!(
            "../../../../migrations/postgres/0002_authorization_codes_and_consents.sql"
        ),
    },
    Migration {
        version: 3,
        name: "admin_and_audit_log",
        sql: include_str!("../../../../migrations/postgres/0003_admin_and_audit_log.sql"),
    },
    Migration {
        version: 4,
        name: "throttling_and_refresh_grace",
        sql: include_str!("../../../../migrations/postgres/0004_throttling_and_refresh_grace.sql"),
    },
    Migration {
        version: 5,
        name: "accounts",
        sql: include_str!("../../../../migrations/postgres/0005_accounts.sql"),
    },
    Migration {
        version: 6,
        name: "second_factors",
        sql: include_str!("../../../../migrations/postgres/0006_second_factors.sql"),
    },
    Migration {
        version: 7,
        name: "federation",
        sql: include_str!("../../../../migrations/postgres/0007_federation.sql"),
    },
    Migration {
        version: 8,
        name: "browser_apps",
        sql: include_str!("../../../../migrations/postgres/0008_browser_apps.sql"),
    },
    Migration {
        version: 9,
        name: "third_party_clients",
        sql: include_str!("../../../../migrations/postgres/0009_third_party_clients.sql"),
    },
    Migration {
        version: 10,
        name: "dpop",
        sql: include_str!("../../../../migrations/postgres/0010_dpop.sql"),
    },
    Migration {
        version: 11,
        name: "activity",
        sql: include_str!("../../../../migrations/postgres/0011_activity.sql"),
    },
    Migration {
        version: 12,
        name: "admin_sessions",
        sql: include_str!("../../../../migrations/postgres/0012_admin_sessions.sql"),
    },
]);

pub const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS sigil_migrations (
    version BIGINT PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at BIGINT NOT NULL
)";

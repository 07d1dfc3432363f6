//! The `sigil` binary: parse the command line once and run the command.

use clap::Parser;
use sigil_server::config::{
    AuditCommand, Cli, ClientCommand, Command, KeysCommand, ProviderCommand,
    RegistrationTokenCommand, ResourceCommand, UserCommand,
};
use sigil_server::{cli, serve, telemetry};

#[tokio::main]
async fn main() {
    let args = Cli::parse();
    telemetry::init(args.log_format);
    let db = &args.database_url;
    let result = match &args.command {
        Command::Serve(serve_args) => serve::serve(&args, serve_args).await,
        Command::Migrate => cli::migrate(db).await,
        Command::User(UserCommand::Add(a)) => cli::user_add(db, &args.keys_dir, a).await,
        Command::User(UserCommand::Invite(a)) => cli::user_invite(db, &args.keys_dir, a).await,
        Command::User(UserCommand::List(a)) => cli::user_list(db, a).await,
        Command::User(UserCommand::Update(a)) => cli::user_update(db, a).await,
        Command::User(UserCommand::SetPassword(a)) => cli::user_set_password(db, a).await,
        Command::User(UserCommand::Disable(a)) => cli::user_set_disabled(db, a, true).await,
        Command::User(UserCommand::Enable(a)) => cli::user_set_disabled(db, a, false).await,
        Command::User(UserCommand::SignOut(a)) => cli::user_sign_out(db, a).await,
        Command::User(UserCommand::RevokeGrant(a)) => cli::user_revoke_grant(db, a).await,
        Command::Client(ClientCommand::Add(a)) => cli::client_add(db, a).await,
        Command::Client(ClientCommand::List(a)) => cli::client_list(db, a).await,
        Command::Client(ClientCommand::Show(a)) => cli::client_show(db, a).await,
        Command::Client(ClientCommand::Update(a)) => cli::client_update(db, a).await,
        Command::Client(ClientCommand::RotateSecret(a)) => cli::client_rotate_secret(db, a).await,
        Command::Client(ClientCommand::Delete(a)) => cli::client_delete(db, a).await,
        Command::Provider(ProviderCommand::Add(a)) => {
            cli::provider_add(db, &args.keys_dir, a).await
        }
        Command::Provider(ProviderCommand::List(a)) => cli::provider_list(db, a).await,
        Command::Provider(ProviderCommand::Remove(a)) => cli::provider_remove(db, a).await,
        Command::Keys(KeysCommand::List(list)) => cli::keys_list(&args.keys_dir, list),
        Command::Keys(KeysCommand::Rotate(rotate)) => {
            cli::keys_rotate(db, &args.keys_dir, rotate).await
        }
        Command::Keys(KeysCommand::Prune(prune)) => {
            cli::keys_prune(db, &args.keys_dir, prune).await
        }
        Command::Audit(AuditCommand::List(a)) => cli::audit_list(db, a).await,
        Command::Audit(AuditCommand::Verify) => cli::audit_verify(db).await,
        Command::RegistrationToken(RegistrationTokenCommand::Create(a)) => {
            cli::registration_token_create(db, a).await
        }
        Command::RegistrationToken(RegistrationTokenCommand::List(a)) => {
            cli::registration_token_list(db, a).await
        }
        Command::RegistrationToken(RegistrationTokenCommand::Revoke(a)) => {
            cli::registration_token_revoke(db, a).await
        }
        Command::Resource(ResourceCommand::Add(a)) => cli::resource_add(db, a).await,
        Command::Resource(ResourceCommand::List(a)) => cli::resource_list(db, a).await,
        Command::Resource(ResourceCommand::Remove(a)) => cli::resource_remove(db, a).await,
    };
    if let Err(error) = result {
        eprintln!("sigil: error: {error}");
        std::process::exit(1);
    }
}

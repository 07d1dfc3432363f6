//! The `sigil` binary: parse the command line once and run the command.

use clap::Parser;
use sigil_server::config::{Cli, ClientCommand, Command, KeysCommand, UserCommand};
use sigil_server::{cli, serve, telemetry};

#[tokio::main]
async fn main() {
    let args = Cli::parse();
    telemetry::init(args.log_format);
    let result = match &args.command {
        Command::Serve(serve_args) => serve::serve(&args, serve_args).await,
        Command::Migrate => cli::migrate(&args.database_url).await,
        Command::User(UserCommand::Add(add)) => cli::user_add(&args.database_url, add).await,
        Command::Client(ClientCommand::Add(add)) => cli::client_add(&args.database_url, add).await,
        Command::Keys(KeysCommand::List(list)) => cli::keys_list(&args.keys_dir, list),
        Command::Keys(KeysCommand::Rotate(rotate)) => cli::keys_rotate(&args.keys_dir, rotate),
        Command::Keys(KeysCommand::Prune(prune)) => {
            cli::keys_prune(&args.database_url, &args.keys_dir, prune).await
        }
    };
    if let Err(error) = result {
        eprintln!("sigil: error: {error}");
        std::process::exit(1);
    }
}

//! `cloak-chat`: a terminal chat client on the Cloak SDK. Everything is encrypted on this
//! device; the server only relays ciphertext.
//!
//! ```text
//! cloak-chat --server https://chat.example --profile ./alice login --user-token cu_…
//! cloak-chat --profile ./alice invite show
//! cloak-chat --profile ./bob join invite.png
//! cloak-chat --profile ./bob send alice "hello"
//! cloak-chat --profile ./alice recv --wait 10
//! ```

mod calls;
mod commands;
mod files;
mod profile;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// A terminal chat client on the Cloak SDK.
#[derive(Parser)]
#[command(name = "cloak-chat", version)]
struct Cli {
    /// The Cloak server (saved in the profile at login).
    #[arg(long, global = true, env = "CLOAK_SERVER")]
    server: Option<String>,
    /// The directory holding this device's encrypted local store.
    #[arg(
        long,
        global = true,
        env = "CLOAK_PROFILE",
        default_value = ".cloak-chat"
    )]
    profile: PathBuf,
    /// A PEM file of CA certificates to trust besides the system's (a self-hosted server).
    #[arg(long, global = true, env = "CLOAK_CA_CERT")]
    ca_cert: Option<PathBuf>,
    /// Machine-readable output (JSON).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Registers this device with a user token from the host platform (or logs in again)
    /// and prints its id and status (`approved` or `pending`).
    Login {
        /// A user token (`cu_…`) minted by the host platform.
        #[arg(long)]
        user_token: Option<String>,
        /// A name for this device.
        #[arg(long, default_value = "cloak-chat")]
        name: String,
    },
    /// This user's devices.
    #[command(subcommand)]
    Devices(DevicesCommand),
    /// Invites.
    #[command(subcommand)]
    Invite(InviteCommand),
    /// Joins through an invite: a link, or a PNG image of its QR code.
    Join {
        /// `https://…/i/CODE#fp=…` or a path to a PNG file.
        link_or_png: String,
    },
    /// Contacts, with their verification state.
    Contacts,
    /// Sends a text message to a contact (external id or display name).
    Send { contact: String, text: String },
    /// Encrypts a file on this device and sends it to a contact (resuming the upload
    /// after an interruption).
    SendFile { contact: String, path: PathBuf },
    /// Prints received messages; files are saved under `<profile>/downloads/`.
    Recv {
        /// Waits up to this many seconds for a message when none is waiting.
        #[arg(long, default_value_t = 0)]
        wait: u64,
    },
    /// An interactive chat with a contact.
    Chat { contact: String },
    /// The safety number to compare with a contact.
    SafetyNumber {
        contact: String,
        /// Records that the numbers were compared and match.
        #[arg(long)]
        confirm: bool,
    },
    /// Rings a contact and runs the call's signaling with the device that answers (offer,
    /// answer, ICE), printing each step and the signaling round trip; then hangs up.
    Call {
        contact: String,
        /// A video call (default: audio).
        #[arg(long)]
        video: bool,
        /// Gives up after this many seconds.
        #[arg(long, default_value_t = 60)]
        wait: u64,
    },
    /// Waits for a call, takes it and answers its signaling until the caller hangs up.
    Answer {
        /// Gives up after this many seconds.
        #[arg(long, default_value_t = 60)]
        wait: u64,
    },
    /// The TURN credentials this device is issued, for checking a TURN set-up
    /// (`--json`: `{"username","password","uris","ttl_secs"}`).
    CallCredentials,
    /// Registers a push token for this device: when messages wait for it, the tenant's
    /// backend gets a content-free `device.pending` webhook carrying this token.
    PushRegister {
        /// The token the push service gave this install.
        token: String,
        /// The push service (`apns`, `fcm`, or the tenant's own name).
        #[arg(long, default_value = "desktop")]
        provider: String,
    },
}

#[derive(Subcommand)]
enum DevicesCommand {
    /// Lists this user's devices.
    List,
    /// Approves a pending device after comparing its fingerprint.
    Approve {
        device_id: uuid::Uuid,
        /// The fingerprint the new device shows (checked against the directory).
        #[arg(long)]
        fingerprint: String,
    },
    /// Revokes a device: removes it from every conversation.
    Revoke { device_id: uuid::Uuid },
}

#[derive(Subcommand)]
enum InviteCommand {
    /// Prints this user's invite link (with the key fingerprint) and its QR code.
    Show {
        /// How many people may use it.
        #[arg(long, default_value_t = 1)]
        max_uses: u32,
        /// How long it works, in seconds.
        #[arg(long, default_value_t = 86_400)]
        expires_in: u32,
    },
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let ctx = commands::Ctx {
        profile: profile::Profile::new(cli.profile),
        server: cli.server,
        ca_cert: cli.ca_cert,
        json: cli.json,
    };
    let result = match cli.command {
        Command::Login { user_token, name } => {
            commands::login(&ctx, user_token.as_deref(), &name).await
        }
        Command::Devices(DevicesCommand::List) => commands::devices_list(&ctx).await,
        Command::Devices(DevicesCommand::Approve {
            device_id,
            fingerprint,
        }) => commands::devices_approve(&ctx, device_id, &fingerprint).await,
        Command::Devices(DevicesCommand::Revoke { device_id }) => {
            commands::devices_revoke(&ctx, device_id).await
        }
        Command::Invite(InviteCommand::Show {
            max_uses,
            expires_in,
        }) => commands::invite_show(&ctx, max_uses, expires_in).await,
        Command::Join { link_or_png } => commands::join(&ctx, &link_or_png).await,
        Command::Contacts => commands::contacts(&ctx).await,
        Command::Send { contact, text } => commands::send(&ctx, &contact, &text).await,
        Command::SendFile { contact, path } => files::send_file(&ctx, &contact, &path).await,
        Command::Recv { wait } => commands::recv(&ctx, wait).await,
        Command::Chat { contact } => commands::chat(&ctx, &contact).await,
        Command::SafetyNumber { contact, confirm } => {
            commands::safety_number(&ctx, &contact, confirm).await
        }
        Command::Call {
            contact,
            video,
            wait,
        } => calls::call(&ctx, &contact, video, wait).await,
        Command::Answer { wait } => calls::answer(&ctx, wait).await,
        Command::CallCredentials => calls::credentials(&ctx).await,
        Command::PushRegister { token, provider } => {
            commands::push_register(&ctx, &token, &provider).await
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", commands::describe(&e));
            ExitCode::FAILURE
        }
    }
}

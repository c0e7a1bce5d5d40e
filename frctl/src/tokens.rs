//! `frctl tokens create|revoke`. The secret of a new token is printed once; only its hash is kept.

use flatrender_proto::{pb, types::TokenKind};
use serde::Serialize;

use crate::{
    args::{OutputFormat, TokensCommand},
    connect::{Answer, Client},
    output::emit,
};

#[derive(Serialize)]
struct CreatedJson {
    token_id: String,
    /// The secret, shown once.
    token: String,
    kind: &'static str,
    label: String,
}

#[derive(Serialize)]
struct RevokedJson {
    token_id: String,
    revoked: bool,
}

/// Runs a `tokens` subcommand.
pub async fn run(client: &Client, format: OutputFormat, command: TokensCommand) -> anyhow::Result<()> {
    match command {
        TokensCommand::Create {
            kind,
            label,
            tenants,
            ttl,
        } => {
            let response = client
                .admin()
                .create_token(client.request(pb::CreateTokenRequest {
                    kind: kind.to_wire(),
                    label: label.clone(),
                    tenant_ids: tenants,
                    ttl: ttl.map(|ttl| prost_types::Duration {
                        seconds: i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX),
                        nanos: 0,
                    }),
                }))
                .await
                .answer(client)?;
            let json = CreatedJson {
                token_id: response.token_id,
                token: response.token,
                kind: TokenKind::as_str(&kind),
                label,
            };
            emit(format, &json, || {
                outln!("token id: {}", json.token_id);
                outln!("token:    {}", json.token);
                outln!("kind:     {}", json.kind);
                outln!(
                    "the secret is shown only now; store it (revoke with `frctl tokens revoke {}`)",
                    json.token_id
                );
            })
        }
        TokensCommand::Revoke { token_id } => {
            client
                .admin()
                .revoke_token(client.request(pb::RevokeTokenRequest {
                    token_id: token_id.clone(),
                }))
                .await
                .answer(client)?;
            let json = RevokedJson {
                token_id,
                revoked: true,
            };
            emit(format, &json, || outln!("token {} revoked", json.token_id))
        }
    }
}

//! File routes of `serve`: `PUT|GET /api/v1/machines/{id}/files/{*path}`.
//!
//! As in smolvm, an upload is the whole request body (buffered; the route's
//! body limit is 100 MiB, over which axum answers 413 before the handler
//! runs), written at `/<path>` with the agent's defaults: parents created,
//! an existing file replaced, mode 0644 by umask, owned by root. No mode or
//! owner can be given. A download returns the file's bytes.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::Json;
use serde::Serialize;
use smolvm_protocol::{AgentRequest, AgentResponse};

use crate::serve::{agent_failure, blocking, ApiError, Shared};
use crate::serve_exec::ensure_running;
use crate::serve_guest::Session;

#[derive(Serialize)]
pub struct Uploaded {
    path: String,
    size: u64,
}

fn expect_ok(response: Result<AgentResponse, String>, operation: &str) -> Result<(), ApiError> {
    match response {
        Ok(AgentResponse::Ok { .. }) => Ok(()),
        Ok(AgentResponse::Error { message, .. }) => Err(agent_failure(operation, &message)),
        Ok(_) => Err(agent_failure(operation, "unexpected response type")),
        Err(e) => Err(ApiError::Internal(e)),
    }
}

/// smolvm's client: one `FileWrite` up to 1 MiB, else a streamed write in
/// 1 MiB chunks (an agent frame could not hold more).
fn write(session: &mut Session, path: &str, data: &[u8]) -> Result<(), ApiError> {
    const SINGLE_SHOT_MAX: usize = smolvm_protocol::FILE_WRITE_SINGLE_SHOT_MAX;
    const CHUNK: usize = smolvm_protocol::FILE_WRITE_CHUNK_SIZE;
    if data.len() <= SINGLE_SHOT_MAX {
        let request = AgentRequest::FileWrite {
            path: path.to_string(),
            data: data.to_vec(),
            mode: None,
            uid: None,
            gid: None,
        };
        return expect_ok(session.request(&request), "write file");
    }
    let begin = AgentRequest::FileWriteBegin {
        path: path.to_string(),
        mode: None,
        uid: None,
        gid: None,
        total_size: data.len() as u64,
    };
    expect_ok(session.request(&begin), "begin streaming write")?;
    let mut sent = 0;
    for chunk in data.chunks(CHUNK) {
        sent += chunk.len();
        let request = AgentRequest::FileWriteChunk {
            data: chunk.to_vec(),
            done: sent >= data.len(),
        };
        expect_ok(session.request(&request), "stream write chunk")?;
    }
    Ok(())
}

fn read(session: &mut Session, path: &str) -> Result<Vec<u8>, ApiError> {
    const OPERATION: &str = "read file";
    session
        .send(&AgentRequest::FileRead {
            path: path.to_string(),
        })
        .map_err(ApiError::Internal)?;
    let mut out = Vec::new();
    loop {
        match session.receive().map_err(ApiError::Internal)? {
            AgentResponse::DataChunk { data, done } => {
                out.extend_from_slice(&data);
                if done {
                    return Ok(out);
                }
            }
            AgentResponse::Error { message, .. } => return Err(agent_failure(OPERATION, &message)),
            other => {
                return Err(agent_failure(
                    OPERATION,
                    &format!("unexpected response: {other:?}"),
                ))
            }
        }
    }
}

fn guest_path(path: &str) -> String {
    format!("/{}", path.trim_start_matches('/'))
}

pub async fn upload(
    State(state): State<Shared>,
    Path((id, path)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<Uploaded>, ApiError> {
    ensure_running(&state, &id).await?;
    let path = guest_path(&path);
    let size = body.len() as u64;
    let written = path.clone();
    blocking(move || {
        let mut session = state.guests.session(&id)?;
        write(&mut session, &written, &body)
    })
    .await?;
    Ok(Json(Uploaded { path, size }))
}

pub async fn download(
    State(state): State<Shared>,
    Path((id, path)): Path<(String, String)>,
) -> Result<Bytes, ApiError> {
    ensure_running(&state, &id).await?;
    let path = guest_path(&path);
    let data = blocking(move || {
        let mut session = state.guests.session(&id)?;
        read(&mut session, &path)
    })
    .await?;
    Ok(Bytes::from(data))
}

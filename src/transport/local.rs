//! The `local` transport: runs PowerShell as a child process on the controller
//! (`ansible_connection: local`). The program is `salve_local_shell` (default `pwsh`), given
//! the same arguments `powershell.exe` gets on a Windows host, so the script envelope is
//! identical. Output streams line by line; a timeout or cancellation kills the child.

use std::process::Stdio;
use std::sync::Arc;

use async_trait::async_trait;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};
use tokio::process::Command;
use tokio::sync::mpsc;

use super::{
    Cause, ConnectionSpec, Connector, OutputChunk, RunRequest, ScriptOutput, Transport,
    TransportError,
};
use crate::script::{Deliver as _, Delivery};

/// Runs scripts with a local program.
pub struct LocalTransport {
    shell: Vec<String>,
}

/// Connector for `ansible_connection: local` hosts.
pub struct LocalConnector;

#[async_trait]
impl Connector for LocalConnector {
    async fn connect(&self, spec: &ConnectionSpec) -> Result<Arc<dyn Transport>, TransportError> {
        if spec.local_shell.is_empty() {
            return Err(TransportError::config(format!(
                "{}: salve_local_shell is empty",
                spec.name
            )));
        }
        Ok(Arc::new(LocalTransport {
            shell: spec.local_shell.clone(),
        }))
    }
}

async fn pump(
    reader: impl AsyncRead + Unpin,
    wrap: fn(String) -> OutputChunk,
    tx: Option<mpsc::UnboundedSender<OutputChunk>>,
) -> String {
    let mut lines = BufReader::new(reader).lines();
    let mut all = String::new();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(tx) = &tx {
            let _ = tx.send(wrap(line.clone()));
        }
        all.push_str(&line);
        all.push('\n');
    }
    all
}

#[async_trait]
impl Transport for LocalTransport {
    async fn run(&self, request: RunRequest) -> Result<ScriptOutput, TransportError> {
        let Delivery {
            arguments, stdin, ..
        } = request.script.delivery();
        let mut cmd = Command::new(&self.shell[0]);
        cmd.args(&self.shell[1..])
            .args(arguments.split(' '))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|e| {
            TransportError::config_caused_by(
                format!(
                    "cannot start local shell `{}`: {e}; set salve_local_shell",
                    self.shell[0]
                ),
                e,
            )
        })?;
        if let Some(mut pipe) = child.stdin.take() {
            // A child that exits without reading its stdin is not an error here. Dropping the
            // pipe afterwards closes it: the bootstrap reads to its end.
            let _ = pipe.write_all(stdin.as_bytes()).await;
        }
        let out = tokio::spawn(pump(
            child.stdout.take().expect("stdout was piped above"),
            OutputChunk::Stdout,
            request.output.clone(),
        ));
        let err = tokio::spawn(pump(
            child.stderr.take().expect("stderr was piped above"),
            OutputChunk::Stderr,
            request.output.clone(),
        ));
        let status = tokio::select! {
            status = child.wait() => status.map_err(|e| TransportError::Dropped { endpoint: "local".into(), cause: Cause::with_text(e.to_string(), e) })?,
            _ = tokio::time::sleep(request.timeout) => {
                let _ = child.kill().await;
                return Err(TransportError::Timeout { after: request.timeout });
            }
            _ = request.cancel.cancelled() => {
                let _ = child.kill().await;
                return Err(TransportError::Cancelled);
            }
        };
        let stdout = out.await.unwrap_or_default();
        let stderr = err.await.unwrap_or_default();
        Ok(ScriptOutput {
            exit_code: status.code().unwrap_or(-1),
            stdout,
            stderr: super::clixml::decode_stderr(&stderr),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::script::Script;
    use std::time::Duration;

    fn transport(script: &str) -> LocalTransport {
        // `sh -c SCRIPT salve-shell ARGS...`: the script sees the PowerShell arguments as $@.
        LocalTransport {
            shell: vec![
                "sh".into(),
                "-c".into(),
                script.into(),
                "salve-shell".into(),
            ],
        }
    }

    #[tokio::test]
    async fn runs_and_streams_output() {
        let t = transport("echo one; echo two; echo oops >&2; exit 3");
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut req = RunRequest::new(Script::raw("x"), Duration::from_secs(10));
        req.output = Some(tx);
        let out = t.run(req).await.unwrap();
        assert_eq!(
            (out.exit_code, out.stdout.as_str(), out.stderr.as_str()),
            (3, "one\ntwo\n", "oops\n")
        );
        assert_eq!(rx.recv().await, Some(OutputChunk::Stdout("one".into())));
    }

    #[tokio::test]
    async fn passes_the_bootstrap_and_the_script_on_stdin() {
        let t = transport(
            r#"[ "$1 $2 $3" = "-NoProfile -NonInteractive -EncodedCommand" ] && printf '%s\n' "$4" && cat"#,
        );
        let script = Script::raw("Write-Output 'x'\n".repeat(1000));
        let out = t
            .run(RunRequest::new(script.clone(), Duration::from_secs(10)))
            .await
            .unwrap();
        let (encoded, stdin) = out.stdout.split_once('\n').unwrap();
        assert_eq!(
            crate::script::decode_command(encoded).unwrap(),
            crate::script::BOOTSTRAP
        );
        assert_eq!(stdin, script.delivery().stdin);
    }

    #[tokio::test]
    async fn timeout_kills_the_child() {
        let t = transport("sleep 30");
        let err = t
            .run(RunRequest::new(
                Script::raw("x"),
                Duration::from_millis(200),
            ))
            .await
            .unwrap_err();
        assert_eq!(err.class(), "timeout");
    }
}

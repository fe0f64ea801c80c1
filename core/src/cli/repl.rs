//! The interactive loop shared by the clients: a `> ` prompt with line editing and history, one command per line,
//! `quit`/`exit` or end of input to leave.

use std::future::Future;

/// Runs `execute` on every line typed until the user leaves; prints what it returns.
pub async fn run<F, Fut>(mut execute: F) -> anyhow::Result<()>
where
    F: FnMut(String) -> Fut,
    Fut: Future<Output = Result<String, String>>,
{
    let mut editor = rustyline::DefaultEditor::new()?;
    loop {
        match editor.readline("> ") {
            Ok(line) => {
                let line = line.trim().to_string();
                if line.is_empty() {
                    continue;
                }
                if line == "quit" || line == "exit" {
                    return Ok(());
                }
                let _ = editor.add_history_entry(line.as_str());
                match execute(line).await {
                    Ok(out) => print_block(&out),
                    Err(err) => print_block(&err),
                }
            }
            Err(rustyline::error::ReadlineError::Interrupted) => continue,
            Err(rustyline::error::ReadlineError::Eof) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    }
}

fn print_block(s: &str) {
    if s.ends_with('\n') {
        print!("{s}");
    } else if !s.is_empty() {
        println!("{s}");
    }
}

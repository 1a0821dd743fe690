//! The command line's habits: shell completions and man pages, both generated from the clap
//! definitions themselves, so they name every command and option the binary has and cannot
//! drift from it.

use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

#[derive(Debug, clap::Args)]
pub struct ManArgs {
    /// Write one page per command (cfdr.1, cfdr-backup.1, cfdr-backups-verify.1, …) into this
    /// directory, created when it does not exist; without it, cfdr.1 goes to standard output.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

/// `cfdr completions <shell>`: the script on standard output (`cfdr completions bash >
/// /etc/bash_completion.d/cfdr`).
pub fn completions(args: CompletionsArgs, mut cmd: clap::Command) -> anyhow::Result<()> {
    clap_complete::generate(args.shell, &mut cmd, "cfdr", &mut std::io::stdout());
    Ok(())
}

/// `cfdr man [--dir DIR]`.
pub fn man(args: ManArgs, cmd: clap::Command) -> anyhow::Result<()> {
    match args.dir {
        Some(dir) => {
            std::fs::create_dir_all(&dir).map_err(|e| {
                anyhow::anyhow!("cannot create `{}`: {e}; give another --dir", dir.display())
            })?;
            clap_mangen::generate_to(cmd, &dir)?;
            let pages = std::fs::read_dir(&dir)?
                .filter(|e| {
                    e.as_ref()
                        .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "1"))
                })
                .count();
            eprintln!(
                "{pages} man pages in {} (read one with `man -l {}/cfdr.1`)",
                dir.display(),
                dir.display()
            );
        }
        None => clap_mangen::Man::new(cmd).render(&mut std::io::stdout())?,
    }
    Ok(())
}
